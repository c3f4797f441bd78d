"""Retention: the scheduler's tick purges sent reminders and long-expired notifications, in
bounded batches, and keeps everything younger. Time is injected (`now=`), never slept."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from jobs import retention
from jobs.scheduler import tick
from tests.api import register
from tests.integration.rows import insert_booking, insert_event
from webapp.bookings.reminder_models import Reminder
from webapp.db import create_sessionmaker, utcnow
from webapp.notifications.models import Notification, NotificationCounter
from webapp.notifications.services import NewNotification, NotificationService
from webapp.settings import SettingsError, get_settings, load_settings

NOW = utcnow().replace(microsecond=0) + timedelta(days=400)  # the tick's injected "now"
REMINDER_AGE = retention.REMINDERS_AGE
NOTIFICATION_AGE = retention.NOTIFICATIONS_AGE


async def add_reminder(session, booking, user_id: int, *, sent_at: datetime | None, offset: int) -> int:
    event_starts_at = NOW + timedelta(days=3)
    reminder = Reminder(
        booking_id=booking.id,
        event_id=booking.event_id,
        user_id=user_id,
        offset_minutes=offset,
        due_at=event_starts_at - timedelta(minutes=offset),  # never due at NOW: the tick sends nothing
        event_starts_at=event_starts_at,
        sent_at=sent_at,
    )
    session.add(reminder)
    await session.commit()
    return reminder.id


async def notify(session, user_id: int, title: str, expires_at: datetime | None) -> int:
    [created] = await NotificationService(session).notify_many(
        [NewNotification(user_id=user_id, type="general", title=title, expires_at=expires_at)]
    )
    await session.commit()
    return created.seq


async def remaining(session, user_id: int) -> tuple[set[int], list[tuple[int, str]], int]:
    """(reminder ids, (seq, title) of notifications in seq order, the user's last_seq)."""
    reminder_ids = set(await session.scalars(select(Reminder.id)))
    notes = [
        (seq, title)
        for seq, title in await session.execute(
            select(Notification.seq, Notification.title)
            .where(Notification.user_id == user_id)
            .order_by(Notification.seq)
        )
    ]
    last_seq = int(
        await session.scalar(select(NotificationCounter.last_seq).where(NotificationCounter.user_id == user_id))
    )
    await session.rollback()  # SQLite: an open read would hold the write lock the tick needs
    return reminder_ids, notes, last_seq


@pytest.fixture
async def attendee(client, session):
    organizer, _ = await register(client)
    user, _ = await register(client)
    # Still ahead at NOW, so the tick has no review requests to send.
    event = await insert_event(session, organizer["id"], starts_in=NOW - utcnow() + timedelta(days=3))
    booking = await insert_booking(session, event, user["id"])
    return user["id"], booking


async def test_tick_purges_old_sent_reminders_and_long_expired_notifications_and_keeps_the_rest(session, attendee):
    user_id, booking = attendee
    old_sent = await add_reminder(session, booking, user_id, sent_at=NOW - REMINDER_AGE - timedelta(hours=1), offset=1)
    fresh_sent = await add_reminder(
        session, booking, user_id, sent_at=NOW - REMINDER_AGE + timedelta(hours=1), offset=2
    )
    unsent = await add_reminder(session, booking, user_id, sent_at=None, offset=3)
    await notify(session, user_id, "long expired", NOW - NOTIFICATION_AGE - timedelta(hours=1))
    await notify(session, user_id, "never expires", None)
    await notify(session, user_id, "recently expired", NOW - NOTIFICATION_AGE + timedelta(hours=1))
    await notify(session, user_id, "expires later", NOW + timedelta(days=1))
    await notify(session, user_id, "also long expired", NOW - NOTIFICATION_AGE - timedelta(days=10))

    result = await tick(create_sessionmaker(session.bind), now=NOW)

    assert (result.purged_reminders, result.purged_notifications) == (1, 2)
    reminder_ids, notes, last_seq = await remaining(session, user_id)
    assert reminder_ids == {fresh_sent, unsent}
    assert old_sent not in reminder_ids
    assert notes == [(2, "never expires"), (3, "recently expired"), (4, "expires later")]
    # The per-user sequence is a counter, not a count: streams replay by seq, so it never goes back.
    assert last_seq == 5
    assert await notify(session, user_id, "after the purge", None) == 6
    replayed = [n.seq for n in await NotificationService(session).since(user_id, 1, 100)]
    await session.rollback()
    assert replayed == [2, 3, 4, 6]


async def test_purge_goes_in_bounded_batches_one_per_tick_step(session, attendee, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_SIZE", 2)
    user_id, booking = attendee
    long_ago = NOW - REMINDER_AGE - NOTIFICATION_AGE - timedelta(days=1)
    for offset in range(5):
        await add_reminder(session, booking, user_id, sent_at=long_ago, offset=offset)
        await notify(session, user_id, f"expired {offset}", long_ago)
    maker = create_sessionmaker(session.bind)

    purged = []
    for _ in range(4):
        result = await tick(maker, now=NOW)
        purged.append((result.purged_reminders, result.purged_notifications))

    assert purged == [(2, 2), (2, 2), (1, 1), (0, 0)]
    reminder_ids, notes, last_seq = await remaining(session, user_id)
    assert (reminder_ids, notes, last_seq) == (set(), [], 5)


def test_retention_ages_and_batch_size_come_from_the_settings():
    configured = load_settings(
        {"RETENTION_REMINDERS_DAYS": "7", "RETENTION_NOTIFICATIONS_DAYS": "3", "RETENTION_BATCH_SIZE": "50"}
    )
    assert (
        configured.retention_reminders_days,
        configured.retention_notifications_days,
        configured.retention_batch_size,
    ) == (7, 3, 50)
    settings = get_settings()
    assert retention.REMINDERS_AGE == timedelta(days=settings.retention_reminders_days)
    assert retention.NOTIFICATIONS_AGE == timedelta(days=settings.retention_notifications_days)
    assert retention.BATCH_SIZE == settings.retention_batch_size
    with pytest.raises(SettingsError, match="RETENTION_BATCH_SIZE"):
        load_settings({"RETENTION_BATCH_SIZE": "0"})
