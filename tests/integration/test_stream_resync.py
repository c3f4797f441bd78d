"""A lost doorbell ring is caught by the periodic resync check, in one query per process per tick.

Open streams here are real InboxStreams of this process, reading the test database. Notifications
are committed with no doorbell set, as if the ring had been lost (a worker killed after commit, a
publish while Redis was down): only the resync check can tell the streams about them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from sqlalchemy import event, insert

from webapp.auth.models import User
from webapp.db import create_engine, create_sessionmaker, utcnow
from webapp.notifications.resync import StreamResync
from webapp.notifications.services import NewNotification, NotificationService
from webapp.notifications.stream import InboxStream, StreamConfig, StreamEvent
from webapp.realtime.doorbell import Hub, current_doorbell, set_doorbell


class OpenStream:
    """One stream consumed by a task, as an endpoint would, its events collected."""

    def __init__(self, hub: Hub, user_id: int, sessionmaker: Any) -> None:
        self.user_id = user_id
        self.events: list[StreamEvent] = []
        self.changed = asyncio.Event()
        stream = InboxStream(
            user_id=user_id,
            last_seq=None,
            subscription=hub.subscribe(user_id, 64),
            sessionmaker=sessionmaker,
            config=StreamConfig(heartbeat_seconds=60),
        )
        self.task = asyncio.create_task(self._consume(stream))

    async def _consume(self, stream: InboxStream) -> None:
        async for item in stream.events():
            self.events.append(item)
            self.changed.set()

    async def wait_until(self, predicate: Any, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not predicate(self.events):
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())

    def titles(self) -> list[str]:
        return [e.payload["title"] for e in self.events if e.kind == "notification"]


@pytest.fixture
async def readers(database_url: str) -> AsyncIterator[Any]:
    """The streams' own engine, as the app builds it (deferred reads on SQLite)."""
    engine = create_engine(database_url, readers_only=True)
    yield engine
    await engine.dispose()


@pytest.fixture
def no_doorbell() -> Any:
    previous = current_doorbell()
    set_doorbell(None)  # every commit below loses its ring
    yield
    set_doorbell(previous)


async def make_users(session, count: int) -> list[int]:
    now = utcnow()
    rows = [
        {
            "email": f"resync{i}@example.com",
            "name": f"R {i}",
            "password_hash": "!",
            "timezone": "UTC",
            "role": "member",
            "created_at": now,
        }
        for i in range(count)
    ]
    ids = list(await session.scalars(insert(User).returning(User.id), rows))
    await session.commit()
    return sorted(ids)


@asynccontextmanager
async def open_streams(
    hub: Hub, sessionmaker: Any, user_ids: list[int], per_user: int
) -> AsyncIterator[list[OpenStream]]:
    opened = [OpenStream(hub, uid, sessionmaker) for uid in user_ids for _ in range(per_user)]
    try:
        for stream in opened:  # every stream has read its opening state
            await stream.wait_until(lambda events: any(e.kind == "count" for e in events))
        yield opened
    finally:
        for stream in opened:
            stream.task.cancel()
        await asyncio.gather(*(s.task for s in opened), return_exceptions=True)


@contextmanager
def statements_run(engine: Any) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK")):  # SQLite's explicit transaction control
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@pytest.mark.parametrize(("users", "per_user"), [(1, 1), (20, 3)])
async def test_a_notification_whose_ring_was_lost_reaches_the_open_streams_after_one_query_per_tick(
    readers, session, no_doorbell, users, per_user
):
    user_ids = await make_users(session, users)
    hub = Hub()
    sessionmaker = create_sessionmaker(readers)
    resync = StreamResync(hub, sessionmaker, interval_seconds=60)
    async with open_streams(hub, sessionmaker, user_ids, per_user) as opened:
        lucky = user_ids[:2]
        for uid in lucky:
            await NotificationService(session).notify(NewNotification(user_id=uid, type="general", title=f"lost {uid}"))
        await session.commit()
        await asyncio.sleep(0)  # nothing rang: no stream has anything to do
        assert all(s.titles() == [] for s in opened)

        with statements_run(readers) as statements:
            behind = await resync.tick()
        print(f"\n[resync] {len(opened)} open streams of {users} users: {len(statements)} statement(s) in one check")
        assert len(statements) == 1, statements  # one query for all the open streams of the process
        assert "notification_counters" in statements[0]
        assert behind == len(lucky) * per_user  # only the streams that missed a ring are told

        for stream in opened:
            if stream.user_id in lucky:
                # the notification, then the count that comes with it (the stream's last read)
                await stream.wait_until(
                    lambda events: any(e.kind == "count" and e.payload["unread_count"] == 1 for e in events)
                )
        assert all(s.titles() == ([f"lost {s.user_id}"] if s.user_id in lucky else []) for s in opened)

        # Caught up: the next check finds nobody behind, again in one query.
        with statements_run(readers) as statements:
            assert await resync.tick() == 0
        assert len(statements) == 1
