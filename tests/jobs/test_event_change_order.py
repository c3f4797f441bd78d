"""Every event change is told exactly once, whatever order its jobs run in.

The outbox hands nothing to a queue here: the test captures the fan-out messages and runs the
per-chunk actor itself, in the order (or at the same time) the case needs. On PostgreSQL the
simultaneous cases really interleave; on SQLite writers serialise and the same assertions hold.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

import jobs.dispatch
from jobs.bookings import send_booking_confirmation
from jobs.fanout import notify_event_change
from tests.crowd import UNUSABLE_PASSWORD_HASH
from tests.services import race_loop_seconds
from webapp.auth.models import User
from webapp.bookings.event_changes import EventChangeService
from webapp.bookings.models import Booking
from webapp.bookings.services import BookingService
from webapp.db import utcnow
from webapp.events.services import EventDetails, EventService
from webapp.notifications.models import Notification
from webapp.notifications.services import NotificationService
from webapp.outbox.services import hand_overs_finished, set_dispatcher

run_chunk = inspect.unwrap(notify_event_change.fn)  # the actor's coroutine, run in this test's loop
send_booking_confirmation_now = inspect.unwrap(send_booking_confirmation.fn)
ROUNDS = 8


@pytest.fixture
def fan_outs() -> Iterator[list[dict[str, Any]]]:
    """The event fan-out messages the outbox would have queued, in commit order."""
    captured: list[dict[str, Any]] = []

    def record(name: str, kwargs: dict[str, Any]) -> None:
        if name == "fan_out_event_change":
            captured.append(kwargs)

    set_dispatcher(record)
    yield captured
    set_dispatcher(jobs.dispatch.send_by_name)


async def user(maker: Any, email: str) -> int:
    async with maker() as session:
        person = User(email=email, name=email.split("@")[0], password_hash=UNUSABLE_PASSWORD_HASH, timezone="UTC")
        session.add(person)
        await session.commit()
        return person.id


async def event_with_attendee(maker: Any, tag: str) -> tuple[int, int, int]:
    """(organizer id, event id, attendee id): a free event with one confirmed booking."""
    organizer_id = await user(maker, f"{tag}-organizer@example.com")
    attendee_id = await user(maker, f"{tag}-attendee@example.com")
    start = utcnow().replace(microsecond=0) + timedelta(days=7)
    details = EventDetails(
        title="Quiz Night",
        description="",
        venue="Old Hall",
        starts_at=start,
        ends_at=start + timedelta(hours=2),
        timezone="UTC",
        capacity=10,
        price_cents=0,
        currency="EUR",
    )
    async with maker() as session:
        event = await EventService(session).create(await session.get(User, organizer_id), details)
        event_id = event.id
        await session.commit()
    async with maker() as session:
        await BookingService(session).book(await session.get(User, attendee_id), event_id, 1)
        await session.commit()
    return organizer_id, event_id, attendee_id


async def edit(maker: Any, organizer_id: int, event_id: int, **changes: Any) -> None:
    async with maker() as session:
        await EventChangeService(session).update(await session.get(User, organizer_id), event_id, changes)
        await session.commit()
    await hand_overs_finished()  # the fan-out message is captured off the event loop


async def cancel(maker: Any, organizer_id: int, event_id: int) -> None:
    async with maker() as session:
        await EventChangeService(session).cancel(await session.get(User, organizer_id), event_id)
        await session.commit()
    await hand_overs_finished()


async def run_job(message: dict[str, Any], user_ids: list[int]) -> None:
    """One chunk of the fan-out, as a worker would run it for these recipients."""
    await run_chunk(
        event_id=message["event_id"],
        version=message["version"],
        kind=message["kind"],
        changes=message.get("changes") or {},
        user_ids=user_ids,
    )


async def inbox_about(maker: Any, user_id: int, event_id: int, type_: str) -> list[Notification]:
    async with maker() as session:
        rows = list(
            await session.scalars(
                select(Notification)
                .where(Notification.user_id == user_id, Notification.subject_id == event_id, Notification.type == type_)
                .order_by(Notification.seq)
            )
        )
        session.expunge_all()
        await session.rollback()
        return rows


def unread(rows: list[Notification]) -> list[Notification]:
    return [n for n in rows if n.read_at is None]


async def test_an_older_update_job_running_after_a_newer_one_still_tells_its_change(maker, fan_outs, jobs_runtime):
    organizer, event_id, attendee = await event_with_attendee(maker, "late-older")
    await edit(maker, organizer, event_id, venue="New Hall")  # version 2
    await edit(maker, organizer, event_id, venue="Big Hall", title="Quiz Finals")  # version 3
    v2, v3 = fan_outs
    assert (v2["version"], v3["version"]) == (2, 3)

    await run_job(v3, [attendee])
    await run_job(v2, [attendee])
    await run_job(v3, [attendee])  # delivered again: adds nothing
    await run_job(v2, [attendee])

    rows = await inbox_about(maker, attendee, event_id, "event_updated")
    [told] = unread(rows)
    assert "Venue: Old Hall → Big Hall" in told.body, told.body
    assert "Title: Quiz Night → Quiz Finals" in told.body, told.body
    assert told.data["changes"] == {"venue": ["Old Hall", "Big Hall"], "title": ["Quiz Night", "Quiz Finals"]}


async def test_a_change_already_read_is_not_told_again_by_a_late_or_repeated_job(maker, fan_outs, jobs_runtime):
    organizer, event_id, attendee = await event_with_attendee(maker, "read-older")
    await edit(maker, organizer, event_id, venue="New Hall")  # version 2
    [v2] = fan_outs
    await run_job(v2, [attendee])
    [first] = await inbox_about(maker, attendee, event_id, "event_updated")
    assert first.body == "Venue: Old Hall → New Hall"
    async with maker() as session:  # the attendee reads it
        await NotificationService(session).mark_read(attendee, first.id)
        await session.commit()
    await edit(maker, organizer, event_id, title="Quiz Finals")  # version 3
    _, v3 = fan_outs
    await run_job(v2, [attendee])  # delivered again, after the newer edit: adds nothing
    await run_job(v3, [attendee])
    await run_job(v2, [attendee])
    rows = await inbox_about(maker, attendee, event_id, "event_updated")
    [told] = unread(rows)
    assert told.body == "Title: Quiz Night → Quiz Finals"
    assert len(rows) == 2


async def test_update_jobs_running_at_once_leave_one_unread_notification_with_every_change(
    maker, fan_outs, jobs_runtime
):
    for round_ in range(ROUNDS):
        fan_outs.clear()
        organizer, event_id, attendee = await event_with_attendee(maker, f"together-{round_}")
        await edit(maker, organizer, event_id, venue="New Hall")
        await edit(maker, organizer, event_id, title="Quiz Finals")
        v2, v3 = fan_outs
        newer_first = round_ % 2 == 1
        await asyncio.gather(*(run_job(m, [attendee]) for m in ((v3, v2) if newer_first else (v2, v3))))

        rows = await inbox_about(maker, attendee, event_id, "event_updated")
        assert len(unread(rows)) == 1, [(n.body, n.data) for n in rows]
        [told] = unread(rows)
        assert "Venue: Old Hall → New Hall" in told.body and "Title: Quiz Night → Quiz Finals" in told.body


async def test_an_update_job_arriving_after_the_cancellation_tells_nothing(maker, fan_outs, jobs_runtime):
    organizer, event_id, attendee = await event_with_attendee(maker, "late-update")
    await edit(maker, organizer, event_id, venue="New Hall")
    await cancel(maker, organizer, event_id)
    updated, cancelled = fan_outs
    assert cancelled["kind"] == "cancelled"

    await run_job(cancelled, [attendee])
    await run_job(updated, [attendee])

    assert unread(await inbox_about(maker, attendee, event_id, "event_updated")) == []
    [told] = unread(await inbox_about(maker, attendee, event_id, "event_cancelled"))
    assert told.title == "Cancelled: Quiz Night"


async def test_a_booking_confirmation_whose_job_runs_after_the_cancellation_tells_nothing(
    maker, fan_outs, jobs_runtime
):
    """The cancellation can be told before the confirmation's job runs (a retry, a busy queue):
    a confirmation of a seat that is gone is not news, and the cancellation is the one unread item."""
    organizer, event_id, attendee = await event_with_attendee(maker, "late-confirmation")
    await cancel(maker, organizer, event_id)
    [cancelled] = fan_outs
    await run_job(cancelled, [attendee])
    async with maker() as session:
        booking_id = await session.scalar(select(Booking.id).where(Booking.event_id == event_id))
        await session.rollback()

    await send_booking_confirmation_now(booking_id=booking_id)

    async with maker() as session:
        confirmations = await session.scalar(
            select(func.count()).where(Notification.user_id == attendee, Notification.type == "booking_confirmed")
        )
        state = await NotificationService(session).state(attendee)
        await session.rollback()
    assert confirmations == 0
    assert state.unread_count == 1  # "Cancelled: Quiz Night"


async def test_an_update_job_racing_the_cancellation_never_leaves_a_change_unread_after_it(
    maker, fan_outs, jobs_runtime
):
    for round_ in range(ROUNDS):
        fan_outs.clear()
        organizer, event_id, attendee = await event_with_attendee(maker, f"race-cancel-{round_}")
        await edit(maker, organizer, event_id, venue="New Hall")
        [updated] = fan_outs

        async def cancel_and_tell() -> None:
            await cancel(maker, organizer, event_id)  # noqa: B023 - awaited within this round
            await run_job(fan_outs[-1], [attendee])  # noqa: B023

        await asyncio.gather(run_job(updated, [attendee]), cancel_and_tell())

        assert unread(await inbox_about(maker, attendee, event_id, "event_updated")) == [], f"round {round_}"
        assert len(unread(await inbox_about(maker, attendee, event_id, "event_cancelled"))) == 1


async def test_a_change_undone_before_it_was_read_leaves_nothing_to_tell_even_when_a_job_runs_again(
    maker, fan_outs, jobs_runtime
):
    organizer, event_id, attendee = await event_with_attendee(maker, "undone")
    await edit(maker, organizer, event_id, venue="New Hall")  # version 2
    await run_job(fan_outs[0], [attendee])
    await edit(maker, organizer, event_id, venue="Old Hall")  # version 3: back as it was
    _, v3 = fan_outs
    await run_job(v3, [attendee])
    await run_job(v3, [attendee])  # delivered again
    await run_job(fan_outs[0], [attendee])

    rows = await inbox_about(maker, attendee, event_id, "event_updated")
    assert unread(rows) == [], [n.body for n in unread(rows)]
    [obsolete] = rows
    assert obsolete.obsolete_at is not None


async def test_fan_outs_with_overlapping_recipients_never_deadlock(maker, fan_outs, jobs_runtime, database_url):
    """Two events' update jobs and an announcement, all for the same people, run at once in a
    loop (race_loop_seconds); between rounds some people read their
    updates, so each job's set of items to replace differs. Every job takes its counter locks in
    one ascending pass, so none waits for another in a cycle."""
    import time
    import uuid

    from jobs.fanout import notify_announcement

    announce = inspect.unwrap(notify_announcement.fn)
    seconds = race_loop_seconds(database_url)
    organizer_id = await user(maker, "overlap-organizer@example.com")
    people = [await user(maker, f"overlap-{i}@example.com") for i in range(12)]
    start = utcnow().replace(microsecond=0) + timedelta(days=7)
    events = []
    for title in ("First Night", "Second Night"):
        async with maker() as session:
            organizer = await session.get(User, organizer_id)
            details = EventDetails(title, "", "Hall 0", start, start + timedelta(hours=2), "UTC", 50, 0, "EUR")
            event_id = (await EventService(session).create(organizer, details)).id
            await session.commit()
        for person in people:
            async with maker() as session:
                await BookingService(session).book(await session.get(User, person), event_id, 1)
                await session.commit()
        events.append(event_id)
    rounds, errors = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rounds += 1
        for event_id in events:
            await edit(maker, organizer_id, event_id, venue=f"Hall {rounds}")
        first, second = fan_outs[-2:]
        async with maker() as session:
            for reader in people[rounds % 3 :: 3]:
                await NotificationService(session).mark_all_read(reader)
            await session.commit()
        results = await asyncio.gather(
            run_job(first, people),
            run_job(second, list(reversed(people))),
            announce(
                announcement=uuid.uuid4().hex,
                sender_id=organizer_id,
                title="Doors open early",
                body="",
                event_id=None,
                user_ids=people[::2],
            ),
            return_exceptions=True,
        )
        errors.extend(repr(result) for result in results if isinstance(result, BaseException))
    await hand_overs_finished()
    print(f"overlapping fan-outs: {rounds} rounds of 3 concurrent jobs, {len(errors)} errors")
    assert rounds > 0
    assert errors == []
    for person in people:  # each event's changes are told in one unread item per person, at most
        for event_id in events:
            unread = [n for n in await inbox_about(maker, person, event_id, "event_updated") if n.read_at is None]
            assert len(unread) <= 1
