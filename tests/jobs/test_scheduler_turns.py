"""Schedulers take turns: two of them ticking at the same moment (two processes of one deployment,
here two engines on the database under test) do every piece of work once, and each tick counts
itself, its duration and what it relayed (README "Monitoring")."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from jobs import scheduler
from tests.api import book, create_event, pay, register
from webapp import metrics
from webapp.bookings.models import Booking
from webapp.bookings.reminder_models import Reminder
from webapp.db import create_engine, create_sessionmaker, utcnow
from webapp.events.models import Event
from webapp.outbox import services as outbox
from webapp.outbox.models import OutboxMessage


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class SlowQueue:
    """A dispatcher that records every hand-over and takes its time, as a busy broker does: the
    window in which a second scheduler could hand the same rows over again."""

    def __init__(self, seconds_per_message: float) -> None:
        self.seconds_per_message = seconds_per_message
        self.sent: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, actor_name: str, kwargs: dict[str, object]) -> None:
        time.sleep(self.seconds_per_message)
        with self._lock:
            self.sent.append((actor_name, int(kwargs["outbox_id"])))  # type: ignore[call-overload]


@pytest.fixture
def no_app_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process app runs no scheduler of its own: the ticks under test are the only ones.
    (Requested before `client`, so the app starts with it.)"""

    class Idle:
        def shutdown(self, wait: bool = False) -> None:
            pass

    monkeypatch.setattr(scheduler, "start", lambda session_factory: Idle())


async def due_work(client, session) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Work of every kind a tick does, due now: reminders, unpaid bookings past their hold, and
    outbox rows that were never handed over."""
    _, organizer = await register(client)
    starts = utcnow().replace(microsecond=0) + timedelta(hours=3)
    paid_event = await create_event(
        client, organizer, starts_at=starts.isoformat(), ends_at=(starts + timedelta(hours=1)).isoformat()
    )
    for _ in range(3):
        _, token = await register(client)
        booking = (await book(client, token, paid_event["id"])).json()
        assert (await pay(client, token, booking["id"])).status_code == 200
    held_event = await create_event(client, organizer, capacity=10)
    for _ in range(3):
        _, token = await register(client)
        assert (await book(client, token, held_event["id"], seats=2)).status_code == 201
    long_ago = utcnow() - timedelta(hours=2)
    # The 60-minute reminders are due now; the unpaid bookings were made long ago.
    await session.execute(
        update(Reminder)
        .where(Reminder.event_id == paid_event["id"], Reminder.offset_minutes == 60)
        .values(due_at=utcnow() - timedelta(minutes=1))
    )
    await session.execute(update(Booking).where(Booking.event_id == held_event["id"]).values(created_at=long_ago))
    stranded = [
        OutboxMessage(actor_name="send_booking_cancelled", payload={"booking_id": 10_000 + n}, created_at=long_ago)
        for n in range(4)
    ]
    session.add_all(stranded)
    await session.commit()
    return {"reminders": 3, "released": 3, "stranded": {row.id for row in stranded}, "held_event": held_event["id"]}


async def test_two_schedulers_ticking_at_once_do_every_piece_of_work_once(  # type: ignore[no-untyped-def]
    no_app_scheduler, client, session, database_url
) -> None:
    work = await due_work(client, session)
    queue = SlowQueue(seconds_per_message=0.2)
    second_engine = create_engine(database_url)
    outbox.set_dispatcher(queue)
    try:
        first = create_sessionmaker(session.bind)
        second = create_sessionmaker(second_engine)

        async def later() -> scheduler.TickResult:
            await asyncio.sleep(0.05)
            return await scheduler.tick(second)

        results = await asyncio.gather(scheduler.tick(first), later())
        await outbox.hand_overs_finished()
    finally:
        from jobs.dispatch import send_by_name

        outbox.set_dispatcher(send_by_name)
        await second_engine.dispose()

    handed_over = Counter(outbox_id for _, outbox_id in queue.sent)
    assert [outbox_id for outbox_id, times in handed_over.items() if times > 1] == [], "handed over twice"
    assert work["stranded"] <= set(handed_over)  # every stranded row went out, once
    by_actor = Counter(actor for actor, _ in queue.sent)
    assert by_actor["send_event_reminder"] == work["reminders"]
    assert sum(r.reminders for r in results) == work["reminders"]
    assert sum(r.released for r in results) == work["released"]
    assert by_actor["send_booking_cancelled"] == work["released"] + len(work["stranded"])  # type: ignore[operator, arg-type]
    reminder_rows = await session.scalar(
        select(func.count(OutboxMessage.id)).where(OutboxMessage.actor_name == "send_event_reminder")
    )
    assert reminder_rows == work["reminders"]
    seats = await session.scalar(select(Event.seats_booked).where(Event.id == work["held_event"]))
    assert seats == 0  # the seats of each released booking came back once
    await session.rollback()


async def test_a_tick_counts_itself_its_duration_and_what_it_relayed(no_app_scheduler, client, session) -> None:  # type: ignore[no-untyped-def]
    work = await due_work(client, session)
    before = {
        "completed": sample("tidings_scheduler_ticks_total", outcome="completed"),
        "observed": sample("tidings_scheduler_tick_seconds_count"),
        "reminders": sample("tidings_scheduler_relayed_total", kind="reminder"),
        "released": sample("tidings_scheduler_relayed_total", kind="released_booking"),
        "again": sample("tidings_scheduler_relayed_total", kind="outbox_redelivery"),
    }
    result = await scheduler.tick(create_sessionmaker(session.bind))
    await outbox.hand_overs_finished()
    assert (result.reminders, result.released) == (work["reminders"], work["released"])
    assert sample("tidings_scheduler_ticks_total", outcome="completed") - before["completed"] == 1
    assert sample("tidings_scheduler_tick_seconds_count") - before["observed"] == 1
    assert sample("tidings_scheduler_relayed_total", kind="reminder") - before["reminders"] == work["reminders"]
    assert sample("tidings_scheduler_relayed_total", kind="released_booking") - before["released"] == work["released"]
    assert sample("tidings_scheduler_relayed_total", kind="outbox_redelivery") - before["again"] == result.outbox
    assert result.outbox == len(work["stranded"])  # type: ignore[arg-type]


async def test_a_tick_that_fails_counts_as_failed(refused_port: int) -> None:
    down = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{refused_port}/tidings")
    before = sample("tidings_scheduler_ticks_total", outcome="failed")
    try:
        await scheduler.tick(create_sessionmaker(down))
    except Exception:  # noqa: BLE001, S110 - the tick fails as it must; the count is under test
        pass
    else:
        raise AssertionError("a tick against an unreachable database succeeded")
    finally:
        await down.dispose()
    assert sample("tidings_scheduler_ticks_total", outcome="failed") - before == 1


async def test_a_tick_that_cannot_get_its_turn_in_time_is_skipped_and_counted(session) -> None:  # type: ignore[no-untyped-def]
    maker = create_sessionmaker(session.bind)
    before = sample("tidings_scheduler_ticks_total", outcome="skipped")
    async with scheduler.tick_turn(session.bind, wait_seconds=5) as mine:
        assert mine
        result = await scheduler.tick(maker, turn_wait_seconds=0.3)
    assert result.skipped
    assert sample("tidings_scheduler_ticks_total", outcome="skipped") - before == 1
    assert not (await scheduler.tick(maker)).skipped  # the turn was given back
