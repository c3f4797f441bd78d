"""Sending event reminders. The rows are kept true to the event by the bookings
(`webapp/bookings/reminders.py`); here the scheduler claims the due ones and an actor sends each.
At send time everything is checked again, and a reminder is never sent once the event has
started; a late one says the real time left.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp import metrics
from webapp.auth.models import User
from webapp.bookings.models import Booking, BookingAttendee
from webapp.bookings.reminder_models import Reminder
from webapp.events.models import Event
from webapp.notifications.services import NewNotification, NotificationData, NotificationService
from webapp.timeutil import format_in_zone

CLAIM_TIMEOUT = timedelta(minutes=5)  # a claimed reminder whose worker died is claimed again


def time_left(start: datetime, now: datetime) -> str:
    minutes = max(1, round((start - now).total_seconds() / 60))
    if minutes < 90:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def reminder_text(event: Event, user: User, now: datetime) -> tuple[str, str]:
    title = f"“{event.title}” starts in {time_left(event.starts_at, now)}"
    body = f"{format_in_zone(event.starts_at, user.timezone)} at {event.venue}."
    return title, body


class ReminderService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _superseded(self, reminder: Reminder, now: datetime) -> bool:
        later = await self.session.scalar(
            select(Reminder.id).where(
                Reminder.booking_id == reminder.booking_id,
                Reminder.user_id == reminder.user_id,
                Reminder.event_starts_at == reminder.event_starts_at,
                Reminder.offset_minutes < reminder.offset_minutes,
                Reminder.due_at <= now,
            )
        )
        return later is not None

    async def claim_due(self, now: datetime, limit: int = 1000) -> list[int]:
        """Claims reminders that are due and whose event has not started, in the caller's
        transaction (the scheduler writes their outbox rows in it too, then commits). Two
        schedulers never claim the same row (SKIP LOCKED on PostgreSQL; SQLite serialises
        writers); even if a claim were repeated, the notification's dedupe key keeps it to one."""
        candidates = (
            select(Reminder.id)
            .where(
                Reminder.sent_at.is_(None),
                Reminder.due_at <= now,
                Reminder.event_starts_at > now,
                (Reminder.claimed_at.is_(None)) | (Reminder.claimed_at < now - CLAIM_TIMEOUT),
            )
            .order_by(Reminder.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(await self.session.scalars(candidates))
        if ids:
            await self.session.execute(
                update(Reminder)
                .where(Reminder.id.in_(ids))
                .values(claimed_at=now)
                .execution_options(synchronize_session=False)
            )
        return ids

    async def send(self, reminder_id: int, now: datetime) -> NotificationData | None:
        """The actor's work: re-check everything, then notify once."""
        reminder = await self.session.get(Reminder, reminder_id, with_for_update=True)
        if reminder is None or reminder.sent_at is not None:
            return None
        event = await self.session.get(Event, reminder.event_id)
        booking = await self.session.get(Booking, reminder.booking_id)
        attends = await self.session.scalar(
            select(BookingAttendee.user_id).where(
                BookingAttendee.booking_id == reminder.booking_id, BookingAttendee.user_id == reminder.user_id
            )
        )
        user = await self.session.get(User, reminder.user_id)
        still_true = (
            event is not None
            and booking is not None
            and user is not None
            and attends is not None
            and event.status == "scheduled"
            and booking.status == "confirmed"
            and event.starts_at == reminder.event_starts_at
            and now < event.starts_at
        )
        if not still_true:  # cancelled, moved, or too late: never after the start
            return None
        assert event is not None and user is not None
        if await self._superseded(reminder, now):
            # After downtime several windows can be due at once: only the latest one is sent.
            reminder.sent_at = now
            return None
        title, body = reminder_text(event, user, now)
        notification = await NotificationService(self.session).notify(
            NewNotification(
                user_id=user.id,
                type="event_reminder",
                title=title,
                body=body,
                url=f"/events/{event.id}",
                data={"event_id": event.id, "offset_minutes": reminder.offset_minutes},
                subject_kind="event",
                subject_id=event.id,
                # "Starts in 30 minutes" is past telling once the event has started.
                expires_at=event.starts_at,
                dedupe_key=f"reminder:{reminder.booking_id}:{reminder.offset_minutes}:{int(event.starts_at.timestamp())}",
            )
        )
        reminder.sent_at = now
        lateness = max(0.0, (now - reminder.due_at).total_seconds())
        metrics.observe_after_commit(self.session.sync_session, metrics.REMINDER_LATENESS, lateness)
        return notification
