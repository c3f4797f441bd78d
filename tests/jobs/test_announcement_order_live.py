"""Announcements from one sender to one event reach every attendee in the order they were sent,
however many workers run their fan-outs at once. Real Redis broker, real `dramatiq jobs` worker
processes (several, with several threads each), a real web process taking the announcements.

The workers start as the announcements are sent, so the fan-outs of all of them are waiting
together when the workers begin: they run side by side, which is when order was lost.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
from sqlalchemy import text

from tests.conftest import TEST_SECRET
from tests.crowd import seed_crowd
from tests.services import LiveServer, LiveWorker, scaled_env
from webapp.auth.tokens import issue_access_token

ATTENDEES = 40
ANNOUNCEMENTS = 8

INBOXES_SQL = (
    "SELECT user_id, title FROM notifications WHERE type = 'general' AND subject_id = :event "
    "AND title LIKE 'Order check %' ORDER BY user_id, seq"
)


async def inboxes(session, event_id: int) -> dict[int, list[str]]:
    """Each attendee's announcements of this event, by seq."""
    rows = (await session.execute(text(INBOXES_SQL), {"event": event_id})).all()
    await session.rollback()  # every poll sees the workers' newest commits
    found: dict[int, list[str]] = {}
    for user_id, title in rows:
        found.setdefault(user_id, []).append(title)
    return found


async def test_announcements_sent_in_a_row_reach_every_attendee_in_send_order_with_many_workers(
    database_url, session, tmp_path
):
    organizer_id, event_id = await seed_crowd(session, ATTENDEES, tag="order")
    env = {**scaled_env(database_url, TEST_SECRET), "ANNOUNCEMENTS_PER_HOUR": "1000"}
    web = LiveServer(env=env, log_path=tmp_path / "web.log")
    workers = [LiveWorker(env=env, log_path=tmp_path / f"worker-{i}.log", threads=4, processes=1) for i in range(2)]
    web.start()
    try:
        token = issue_access_token(organizer_id, TEST_SECRET, timedelta(minutes=5), "test-session")
        sent = [f"Order check {i + 1}" for i in range(ANNOUNCEMENTS)]
        for worker in workers:
            worker.start()
        async with httpx.AsyncClient(base_url=web.url, timeout=30) as http:
            for title in sent:  # one after the other: each is sent once the previous was accepted
                response = await http.post(
                    "/api/v1/announcements",
                    json={"title": title, "body": "", "event_id": event_id},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 202, response.text
        sent_by = time.monotonic()
        deadline = sent_by + 90
        found: dict[int, list[str]] = {}
        while time.monotonic() < deadline:
            found = await inboxes(session, event_id)
            if len(found) == ATTENDEES and all(len(titles) == ANNOUNCEMENTS for titles in found.values()):
                break
            await asyncio.sleep(0.2)
        assert len(found) == ATTENDEES and all(len(titles) == ANNOUNCEMENTS for titles in found.values()), found
        out_of_order = {user_id: titles for user_id, titles in found.items() if titles != sent}
        print(
            f"\nannouncement order: {len(out_of_order)} of {ATTENDEES} inboxes out of send order; "
            f"all written {time.monotonic() - sent_by:.1f} s after the last was sent"
        )
        assert not out_of_order, next(iter(out_of_order.values()))
    finally:
        for worker in workers:
            worker.stop()
        web.stop()
