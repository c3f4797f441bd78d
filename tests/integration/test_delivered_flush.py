"""What "delivered live" needs: collected in memory by the streams, written in batches: short
transactions (one per thousand ids), none when there is nothing to write, nothing lost when a
flush fails or the process stops, and an earlier delivery time never overwritten."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import event, insert, select

from tests.crowd import UNUSABLE_PASSWORD_HASH
from tests.services import free_port
from tidings.app import create_app
from webapp.auth.models import User
from webapp.db import create_engine, create_sessionmaker, utcnow
from webapp.notifications.delivered import DeliveredFlush, DeliveredLive
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService


async def notifications(session: Any, count: int) -> list[int]:
    user = User(email="reader@example.com", name="Reader", password_hash=UNUSABLE_PASSWORD_HASH)
    session.add(user)
    await session.flush()
    created = await NotificationService(session).notify_many(
        [NewNotification(user_id=user.id, type="general", title=f"n{i}") for i in range(count)]
    )
    await session.commit()
    return [n.id for n in created]


async def delivered_at(session: Any, ids: list[int]) -> dict[int, datetime | None]:
    rows = await session.execute(select(Notification.id, Notification.delivered_at).where(Notification.id.in_(ids)))
    found = dict(rows.all())
    await session.rollback()
    return found


class Transactions:
    """Counts the transactions begun on an engine."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        self.engine = engine

    def __enter__(self) -> Transactions:
        event.listen(self.engine.sync_engine, "begin", self._begun)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine.sync_engine, "begin", self._begun)

    def _begun(self, _connection: Any) -> None:
        self.count += 1


async def test_a_flush_writes_each_first_delivery_time_once_in_one_transaction(engine, session) -> None:
    ids = await notifications(session, 3)
    live = DeliveredLive()
    flush = DeliveredFlush(live, create_sessionmaker(engine), interval_seconds=60)
    first = time.time() - 5
    live.record(ids[0], first)
    live.record(ids[0], first + 3)  # a later write of the same notification (another tab) changes nothing
    live.record(ids[1], first + 1)
    with Transactions(engine) as transactions:
        assert await flush.tick() == 2
    assert transactions.count == 1
    written = await delivered_at(session, ids)
    assert abs(written[ids[0]] - datetime.fromtimestamp(first, UTC)) < timedelta(seconds=0.2)
    assert abs(written[ids[1]] - datetime.fromtimestamp(first + 1, UTC)) < timedelta(seconds=0.2)
    assert written[ids[2]] is None

    live.record(ids[0], time.time())  # written again later (another web process, a reconnect)
    live.record(ids[2], time.time())
    assert await flush.tick() == 1
    again = await delivered_at(session, ids)
    assert again[ids[0]] == written[ids[0]]  # the first delivery stays
    assert again[ids[2]] is not None

    with Transactions(engine) as transactions:
        assert await flush.tick() == 0
    assert transactions.count == 0, "nothing to flush: no transaction"


async def test_a_failed_flush_keeps_its_ids_for_the_next(engine, session, database_url) -> None:
    ids = await notifications(session, 2)
    live = DeliveredLive()
    for notification_id in ids:
        live.record(notification_id, time.time())
    unreachable = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    try:
        await DeliveredFlush(live, create_sessionmaker(unreachable), interval_seconds=60).tick_logged()
    finally:
        await unreachable.dispose()
    assert len(live) == 2
    assert await DeliveredFlush(live, create_sessionmaker(engine), interval_seconds=60).tick() == 2
    assert all((await delivered_at(session, ids)).values())


async def test_ten_thousand_deliveries_are_written_by_one_flush_a_thousand_per_transaction(engine, session) -> None:
    user = User(email="crowd@example.com", name="Crowd", password_hash=UNUSABLE_PASSWORD_HASH)
    session.add(user)
    await session.flush()
    now = utcnow()
    rows = [
        {
            "user_id": user.id,
            "seq": i,
            "type": "general",
            "title": "t",
            "body": "",
            "url": "/",
            "data": {},
            "dedupe_key": f"k{i}",
            "created_at": now,
        }
        for i in range(1, 10_001)
    ]
    await session.execute(insert(Notification), rows)
    await session.commit()
    ids = list(await session.scalars(select(Notification.id).where(Notification.user_id == user.id)))
    await session.rollback()
    live = DeliveredLive()
    started = time.time()
    for offset, notification_id in enumerate(ids):
        live.record(notification_id, started + offset / 10_000)  # a second's worth of writes
    began = time.perf_counter()
    with Transactions(engine) as transactions:
        assert await DeliveredFlush(live, create_sessionmaker(engine), interval_seconds=60).tick() == 10_000
    assert transactions.count == 10
    print(f"flush of 10,000 deliveries on {engine.dialect.name}: {(time.perf_counter() - began) * 1000:.0f} ms")
    assert all((await delivered_at(session, ids)).values())


async def test_deliveries_still_in_memory_are_written_when_the_app_stops(settings, session) -> None:
    ids = await notifications(session, 2)
    app = create_app(settings)
    async with AsyncTestClient(app):
        for notification_id in ids:
            app.state.delivered_live.record(notification_id, time.time())
    assert all((await delivered_at(session, ids)).values())
