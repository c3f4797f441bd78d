"""Kill a worker (SIGKILL) in the middle of an event-update fan-out to 2,000 attendees, start
another: every attendee ends up with exactly one notification for that update. Real Redis
broker, real `dramatiq jobs` processes, a real web process taking the organizer's edit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta

import httpx
from sqlalchemy import select, text

from tests.conftest import TEST_SECRET
from tests.crowd import seed_crowd
from tests.services import LiveServer, LiveWorker, scaled_env
from webapp.db import utcnow
from webapp.notifications.models import Notification

ATTENDEES = 2000


# Only this test's update: ids restart with every test, and a retry of an earlier test's job,
# still running in this process, may write an update of "its" event with the same id.
COUNT_SQL = (
    "SELECT count(id), count(DISTINCT user_id) FROM notifications WHERE type = 'event_updated' AND subject_id = {} "
    "AND body LIKE '%Venue: Arena → Stadium%'"
)


async def updates_for(session, event_id: int) -> tuple[int, int]:
    """(notification rows, distinct recipients) for the event's update. On SQLite the poll reads
    outside any transaction, so watching never holds the write lock the workers need."""
    url = session.bind.url
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database, isolation_level=None) as conn:
            rows, people = conn.execute(COUNT_SQL.format(int(event_id))).fetchone()
    else:
        rows, people = (await session.execute(text(COUNT_SQL.format(int(event_id))))).one()
        await session.rollback()
    return int(rows), int(people)


async def test_a_worker_killed_mid_fan_out_leaves_every_attendee_exactly_one_notification(
    database_url, session, tmp_path
):
    organizer_id, event_id = await seed_crowd(session, ATTENDEES, tag="kill")
    env = {**scaled_env(database_url, TEST_SECRET), "JOBS_FANOUT_CHUNK_SIZE": "500"}
    web = LiveServer(env=env, log_path=tmp_path / "web.log")
    first = LiveWorker(env=env, log_path=tmp_path / "worker-1.log", threads=1)
    second = LiveWorker(env=env, log_path=tmp_path / "worker-2.log", threads=1)
    web.start()
    first.start()
    try:
        from webapp.auth.tokens import issue_access_token

        token = issue_access_token(organizer_id, TEST_SECRET, timedelta(minutes=5), "test-session")
        new_start = (utcnow().replace(microsecond=0) + timedelta(days=6)).isoformat()
        new_end = (utcnow().replace(microsecond=0) + timedelta(days=6, hours=3)).isoformat()
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=web.url, timeout=30) as http:
            response = await http.patch(
                f"/api/v1/events/{event_id}",
                json={"starts_at": new_start, "ends_at": new_end, "venue": "Stadium"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 200, response.text
        # Kill the worker once part of the fan-out is committed and part is not.
        killed_at = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows, _ = await updates_for(session, event_id)
            if 0 < rows < ATTENDEES:
                first.kill()
                killed_at = rows
                break
            assert rows < ATTENDEES, "the fan-out finished before the worker could be killed"
            await asyncio.sleep(0.005)
        assert killed_at is not None, "the fan-out never started"
        second.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows, people = await updates_for(session, event_id)
            if people == ATTENDEES:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # let any redelivered chunk finish: it must add nothing
        rows, people = await updates_for(session, event_id)
        elapsed = time.monotonic() - started
        print(
            f"\nkill test: {ATTENDEES} attendees, killed after {killed_at} rows were committed; "
            f"finished with {rows} rows for {people} people in {elapsed:.1f} s"
        )
        assert (rows, people) == (ATTENDEES, ATTENDEES)
        sample = await session.scalar(
            select(Notification.body).where(Notification.type == "event_updated", Notification.subject_id == event_id)
        )
        await session.rollback()
        assert "→" in sample and "Venue: Arena → Stadium" in sample
    finally:
        first.kill()
        second.stop()
        web.stop()
