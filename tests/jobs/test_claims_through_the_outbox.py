"""The scheduler's claims go to the queue through the outbox, in the claim's own transaction:
a send that fails while the broker is down is retried by a later tick, and nothing is lost or
doubled. Real in-process broker and worker; the broker refuses every message while "down"."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta

import dramatiq
import pytest
from sqlalchemy import func, select

from tests.api import book, create_event, eventually, pay, register
from webapp.db import create_sessionmaker, utcnow
from webapp.events.models import Event
from webapp.notifications.models import Notification
from webapp.outbox.models import OutboxMessage


class Broker:
    """The app's broker, which can be taken down: while down, every send raises, as a Redis
    that does not answer does, and the refused actor names are recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.broker = dramatiq.get_broker()
        self.refused: list[str] = []

    def down(self) -> None:
        def refuse(message: dramatiq.Message, *, delay: int | None = None) -> dramatiq.Message:
            self.refused.append(message.actor_name)
            raise ConnectionError("the broker is not answering")

        self.monkeypatch.setattr(self.broker, "enqueue", refuse)

    def up(self) -> None:
        self.monkeypatch.undo()


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    broker = Broker(monkeypatch)
    yield broker
    broker.up()


async def tick_while(broker: Broker, maker, now: datetime, actor_name: str) -> None:
    """A tick during which the broker is down, until it has tried (and failed) to send."""
    from jobs.scheduler import tick

    broker.down()
    with contextlib.suppress(ConnectionError):  # a tick may fail outright; the next one runs anyway
        await tick(maker, now=now)
    await eventually(lambda: _true(actor_name in broker.refused))
    broker.up()


async def _true(value: bool) -> bool:
    return value


async def count(session, user_id: int, type_: str) -> int:
    n = await session.scalar(
        select(func.count(Notification.id)).where(Notification.user_id == user_id, Notification.type == type_)
    )
    await session.rollback()
    return int(n or 0)


async def all_outbox_rows_completed(session) -> bool:
    pending = await session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.completed_at.is_(None)))
    await session.rollback()
    return pending == 0


async def test_review_requests_claimed_while_the_broker_is_down_arrive_once_when_it_is_back(client, session, broker):
    from jobs.scheduler import REVIEW_REQUEST_DELAY, tick

    _, organizer = await register(client)
    event = await create_event(client, organizer, price_cents=0, title="Harbour Concert")
    guests = [await register(client) for _ in range(3)]
    for _, token in guests:
        assert (await book(client, token, event["id"])).status_code == 201
    ends_at = (await session.get(Event, event["id"])).ends_at
    await session.rollback()
    maker = create_sessionmaker(session.bind)
    due = ends_at + REVIEW_REQUEST_DELAY + timedelta(minutes=1)

    await tick_while(broker, maker, due, "fan_out_review_requests")
    await tick(maker, now=due + timedelta(minutes=1))  # the broker is back

    for user, _ in guests:
        await eventually(lambda uid=user["id"]: count(session, uid, "review_request"))
    await eventually(lambda: all_outbox_rows_completed(session))
    assert [await count(session, user["id"], "review_request") for user, _ in guests] == [1, 1, 1]
    await tick(maker, now=due + timedelta(hours=1))  # nothing is left to send
    await eventually(lambda: all_outbox_rows_completed(session))
    assert [await count(session, user["id"], "review_request") for user, _ in guests] == [1, 1, 1]


async def test_a_reminder_claimed_while_the_broker_is_down_arrives_once_when_it_is_back(client, session, broker):
    from jobs.scheduler import tick

    _, organizer = await register(client)
    starts_at = utcnow().replace(microsecond=0) + timedelta(hours=3)
    event = await create_event(
        client, organizer, starts_at=starts_at.isoformat(), ends_at=(starts_at + timedelta(hours=2)).isoformat()
    )
    attendee, token = await register(client)
    booking = (await book(client, token, event["id"])).json()
    assert (await pay(client, token, booking["id"])).status_code == 200
    maker = create_sessionmaker(session.bind)
    due = starts_at - timedelta(minutes=59)  # the one-hour reminder is due

    await tick_while(broker, maker, due, "send_event_reminder")
    await tick(maker, now=due + timedelta(minutes=1))  # the broker is back

    await eventually(lambda: count(session, attendee["id"], "event_reminder"))
    await eventually(lambda: all_outbox_rows_completed(session))
    assert await count(session, attendee["id"], "event_reminder") == 1
