"""What a stream's opening reads (issue 12, the reconnect storm): after a deploy or a network blip
every page reconnects at once, each with its Last-Event-ID, and each opening's reads are the
storm's cost. An opening is one session (one connection taken from the pool, one queue place):
its state, and the replay of what was missed only when something was missed, in one statement
even when the missed items name who caused them (announcements and invitations do).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from tests.integration.test_stream_resync import make_users, no_doorbell, readers, statements_run
from webapp.db import create_sessionmaker
from webapp.notifications.services import NewNotification, NotificationService
from webapp.notifications.stream import InboxStream, StreamConfig, StreamEvent
from webapp.realtime.doorbell import Hub

__all__ = ["no_doorbell", "readers"]  # fixtures shared with the resync tests


@contextmanager
def checkouts(engine: Any) -> Iterator[list[object]]:
    """Each connection the engine's pool hands out."""
    taken: list[object] = []

    def record(dbapi_connection, connection_record, proxy) -> None:  # type: ignore[no-untyped-def]
        taken.append(connection_record)

    event.listen(engine.sync_engine, "checkout", record)
    try:
        yield taken
    finally:
        event.remove(engine.sync_engine, "checkout", record)


async def opening(readers: Any, user_id: int, last_seq: int | None) -> list[StreamEvent]:
    """The events a stream opened at `last_seq` sends before it waits for live ones."""
    stream = InboxStream(
        user_id=user_id,
        last_seq=last_seq,
        subscription=Hub().subscribe(user_id, 64),
        sessionmaker=create_sessionmaker(readers),
        config=StreamConfig(heartbeat_seconds=60),
    )
    events: list[StreamEvent] = []
    body: AsyncIterator[StreamEvent] = stream.events()
    while not events or events[-1].kind != "count":
        events.append(await asyncio.wait_for(anext(body), 10))
    await body.aclose()  # type: ignore[attr-defined]
    return events


@pytest.mark.parametrize(
    ("last_seq", "replayed"),
    [(None, []), (3, []), (1, [2, 3]), (0, [1, 2, 3])],
    ids=["first-connect", "nothing-missed", "two-missed", "all-missed"],
)
async def test_an_opening_reads_in_one_session_and_replays_only_what_was_missed(
    readers, session, no_doorbell, last_seq, replayed
):
    user_id, organizer = await make_users(session, 2)
    for n in range(3):
        await NotificationService(session).notify(
            NewNotification(user_id=user_id, type="general", title=f"n{n + 1}", actor_id=organizer)
        )
    await session.commit()

    with statements_run(readers) as statements, checkouts(readers) as taken:
        events = await opening(readers, user_id, last_seq)

    notifications = [e for e in events if e.kind == "notification"]
    assert [e.seq for e in notifications] == replayed
    assert all(e.payload["actor"] == {"id": organizer, "name": "R 1", "initials": "R1"} for e in notifications)
    assert events[-1].kind == "count" and events[-1].payload["unread_count"] == 3
    assert len(taken) == 1, f"{len(taken)} connections taken for one opening"
    # The state (count and position in one statement), then the missed rows with their actors'
    # names when there are any.
    assert len(statements) == (2 if replayed else 1), statements
