"""The reminder bug class, each case a test. Time is injected (`now=`), never slept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tests.api import bearer, book, create_event, pay, register
from webapp.bookings.reminder_models import Reminder
from webapp.db import utcnow
from webapp.notifications.models import Notification
from webapp.reminders.services import ReminderService, time_left


def at(minutes_from_now: float) -> str:
    return (utcnow().replace(microsecond=0) + timedelta(minutes=minutes_from_now)).isoformat()


async def booked_event(client, starts_in_minutes: float, attendee_tz: str = "UTC"):
    """An event starting in `starts_in_minutes`, with one paid (confirmed) booking."""
    _, organizer = await register(client)
    event = await create_event(client, organizer, starts_at=at(starts_in_minutes), ends_at=at(starts_in_minutes + 120))
    attendee, token = await register(client, timezone=attendee_tz)
    booking = (await book(client, token, event["id"])).json()
    assert (await pay(client, token, booking["id"])).status_code == 200
    return event, organizer, attendee, token, booking


async def reminders(session, event_id: int) -> list[Reminder]:
    rows = list(await session.scalars(select(Reminder).where(Reminder.event_id == event_id).order_by(Reminder.due_at)))
    session.expunge_all()  # keep what was read, then end the read: on SQLite it holds the write lock
    await session.rollback()
    return rows


async def reminder_notifications(session, user_id: int) -> list[Notification]:
    rows = list(
        await session.scalars(
            select(Notification).where(Notification.user_id == user_id, Notification.type == "event_reminder")
        )
    )
    session.expunge_all()
    await session.rollback()
    return rows


async def run_due(session, now: datetime) -> list[Notification]:
    """What the scheduler and the actor do, at an injected time."""
    service = ReminderService(session)
    sent = []
    claimed = await service.claim_due(now)
    await session.commit()  # the tick's unit of work
    for reminder_id in claimed:
        notification = await service.send(reminder_id, now)
        await session.commit()  # each actor run's unit of work
        if notification is not None:
            sent.append(notification)
    return sent


async def test_confirming_a_booking_creates_the_three_reminders(client, session):
    event, *_ = await booked_event(client, starts_in_minutes=3 * 24 * 60)
    rows = await reminders(session, event["id"])
    assert sorted(r.offset_minutes for r in rows) == [30, 60, 1440]
    start = datetime.fromisoformat(event["starts_at"])
    assert {r.offset_minutes: r.due_at for r in rows} == {
        1440: start - timedelta(hours=24),
        60: start - timedelta(hours=1),
        30: start - timedelta(minutes=30),
    }


async def test_booking_two_hours_before_gets_only_the_one_hour_and_thirty_minute_reminders(client, session):
    event, *_ = await booked_event(client, starts_in_minutes=120)
    assert sorted(r.offset_minutes for r in await reminders(session, event["id"])) == [30, 60]


async def test_booking_45_minutes_before_gets_only_the_30_minute_reminder(client, session):
    event, *_ = await booked_event(client, starts_in_minutes=45)
    assert [r.offset_minutes for r in await reminders(session, event["id"])] == [30]


async def test_event_moved_later_old_reminders_never_fire_new_ones_do_at_the_new_times(client, session):
    event, organizer, attendee, *_ = await booked_event(client, starts_in_minutes=3 * 60)
    old_start = datetime.fromisoformat(event["starts_at"])
    moved = await client.patch(
        f"/api/v1/events/{event['id']}",
        json={"starts_at": at(6 * 60), "ends_at": at(8 * 60)},
        headers=bearer(organizer),
    )
    assert moved.status_code == 200
    new_start = datetime.fromisoformat(moved.json()["starts_at"])
    rows = await reminders(session, event["id"])
    assert {r.event_starts_at for r in rows} == {new_start}
    # At the old 1-hour mark nothing fires.
    assert await run_due(session, old_start - timedelta(minutes=59)) == []
    # At the new marks the new ones do, each once.
    first = await run_due(session, new_start - timedelta(minutes=60))
    second = await run_due(session, new_start - timedelta(minutes=30))
    assert [n.title for n in first + second] == [
        f"“{event['title']}” starts in 60 minutes",
        f"“{event['title']}” starts in 30 minutes",
    ]
    assert len(await reminder_notifications(session, attendee["id"])) == 2


async def test_event_moved_earlier_past_a_window_skips_that_window(client, session):
    event, organizer, *_ = await booked_event(client, starts_in_minutes=2 * 24 * 60)
    moved = await client.patch(
        f"/api/v1/events/{event['id']}", json={"starts_at": at(50), "ends_at": at(170)}, headers=bearer(organizer)
    )
    assert moved.status_code == 200
    assert [r.offset_minutes for r in await reminders(session, event["id"])] == [30]


async def test_a_reminder_expires_when_its_event_starts(client, session):
    """A "starts in 30 minutes" never sits unread the next day: it leaves the count at the start."""
    event, _, attendee, token, _ = await booked_event(client, starts_in_minutes=45)
    start = datetime.fromisoformat(event["starts_at"])
    [sent] = await run_due(session, start - timedelta(minutes=30))
    assert sent.expires_at == start
    [stored] = await reminder_notifications(session, attendee["id"])
    assert stored.expires_at == start
    unread_reminders = "/api/v1/notifications?status=unread&type=event_reminder"
    assert len((await client.get(unread_reminders, headers=bearer(token))).json()["items"]) == 1
    # Moments after the start: the count reads the real clock, so the expiry is moved into the past.
    await session.execute(
        update(Notification).where(Notification.id == stored.id).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await session.commit()
    assert (await client.get(unread_reminders, headers=bearer(token))).json()["items"] == []


async def test_a_cancelled_event_sends_no_reminder(client, session):
    event, organizer, attendee, *_ = await booked_event(client, starts_in_minutes=3 * 60)
    start = datetime.fromisoformat(event["starts_at"])
    assert (await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(organizer))).status_code == 200
    assert await reminders(session, event["id"]) == []
    assert await run_due(session, start - timedelta(minutes=30)) == []
    assert await reminder_notifications(session, attendee["id"]) == []


async def test_a_cancelled_booking_sends_no_reminder(client, session):
    event, _, attendee, token, booking = await booked_event(client, starts_in_minutes=3 * 60)
    start = datetime.fromisoformat(event["starts_at"])
    assert (await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(token))).status_code == 200
    assert await reminders(session, event["id"]) == []
    assert await run_due(session, start - timedelta(minutes=30)) == []
    assert await reminder_notifications(session, attendee["id"]) == []


async def test_a_reminder_claimed_before_a_cancellation_is_not_sent(client, session):
    event, organizer, attendee, *_ = await booked_event(client, starts_in_minutes=3 * 60)
    start = datetime.fromisoformat(event["starts_at"])
    service = ReminderService(session)
    claimed = await service.claim_due(start - timedelta(minutes=59))
    await session.commit()
    assert len(claimed) == 1
    await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(organizer))
    assert await service.send(claimed[0], start - timedelta(minutes=58)) is None
    await session.commit()
    assert await reminder_notifications(session, attendee["id"]) == []


async def test_worker_down_across_a_due_time_sends_late_with_the_real_time_left_never_after_start(client, session):
    event, _, attendee, *_ = await booked_event(client, starts_in_minutes=2 * 60, attendee_tz="America/New_York")
    start = datetime.fromisoformat(event["starts_at"])
    # Down from before the 1-hour mark until 12 minutes before the start: both windows are due.
    late = await run_due(session, start - timedelta(minutes=12))
    assert len(late) == 1, "only the latest overdue window is sent"
    assert late[0].title == f"“{event['title']}” starts in 12 minutes"
    assert "EST" in late[0].body or "EDT" in late[0].body  # the attendee's time zone
    # Down across the start: nothing is ever sent after it.
    event2, _, attendee2, *_ = await booked_event(client, starts_in_minutes=2 * 60)
    start2 = datetime.fromisoformat(event2["starts_at"])
    assert await run_due(session, start2 + timedelta(minutes=1)) == []
    unsent = [r.id for r in await reminders(session, event2["id"])]
    assert all([await ReminderService(session).send(rid, start2 + timedelta(seconds=1)) is None for rid in unsent])
    await session.commit()
    assert await reminder_notifications(session, attendee2["id"]) == []
    assert len(await reminder_notifications(session, attendee["id"])) == 1


async def test_two_schedulers_claiming_at_once_send_every_reminder_exactly_once(client, engine, session):
    import asyncio

    from webapp.db import create_engine, create_sessionmaker

    events = [await booked_event(client, starts_in_minutes=90 + i) for i in range(6)]
    latest_due = max(datetime.fromisoformat(e[0]["starts_at"]) for e in events) - timedelta(minutes=30)
    now = latest_due + timedelta(minutes=1)
    second_engine = create_engine(str(engine.url.render_as_string(hide_password=False)))
    try:

        async def scheduler(maker) -> list[int]:
            async with maker() as db:
                claimed = await ReminderService(db).claim_due(now)
                await db.commit()
                return claimed

        first, second = await asyncio.gather(
            scheduler(create_sessionmaker(engine)), scheduler(create_sessionmaker(second_engine))
        )
        assert not set(first) & set(second), "a reminder was claimed twice"
        assert len(first) + len(second) == 12  # six bookings × (60 and 30 minutes)
        # Even if a claim were repeated, each reminder becomes one notification.
        async with create_sessionmaker(second_engine)() as other:
            for reminder_id in first + second:
                await ReminderService(session).send(reminder_id, now)
                await session.commit()
                await ReminderService(other).send(reminder_id, now)
                await other.commit()
    finally:
        await second_engine.dispose()
    for event, _, attendee, *_ in events:
        assert len(await reminder_notifications(session, attendee["id"])) == 1


def test_time_left_reads_naturally():
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert time_left(start, start - timedelta(minutes=1)) == "1 minute"
    assert time_left(start, start - timedelta(minutes=52)) == "52 minutes"
    assert time_left(start, start - timedelta(hours=24)) == "24 hours"


def lateness_count_and_sum() -> tuple[float, float]:
    from webapp import metrics

    return (
        metrics.REGISTRY.get_sample_value("tidings_reminder_lateness_seconds_count") or 0.0,
        metrics.REGISTRY.get_sample_value("tidings_reminder_lateness_seconds_sum") or 0.0,
    )


async def test_a_sent_reminder_observes_its_lateness_once_committed(client, session):
    event, *_ = await booked_event(client, starts_in_minutes=3 * 60)
    start = datetime.fromisoformat(event["starts_at"])
    due = start - timedelta(minutes=60)
    claimed = await ReminderService(session).claim_due(due + timedelta(seconds=90))
    await session.commit()
    assert len(claimed) == 1
    count, total = lateness_count_and_sum()
    # Rolled back: nothing was sent, so nothing is observed.
    assert await ReminderService(session).send(claimed[0], due + timedelta(seconds=90)) is not None
    await session.rollback()
    assert lateness_count_and_sum() == (count, total)
    # Committed 90 s after its due time: one observation of 90 s.
    assert await ReminderService(session).send(claimed[0], due + timedelta(seconds=90)) is not None
    await session.commit()
    assert lateness_count_and_sum() == (count + 1, total + 90)
    # The 30-minute reminder, sent 20 minutes late.
    assert await run_due(session, start - timedelta(minutes=10)) != []
    after_second = lateness_count_and_sum()
    assert after_second[0] == count + 2 and after_second[1] == total + 90 + 20 * 60
