"""The reminder rows of confirmed bookings: 24 h, 1 h and 30 min before the start, kept true to
the event.

Rows are written when a booking is confirmed, rewritten in the same transaction when the event
moves, and deleted when the event or booking is cancelled. A window already past when the row
would be written is skipped. They live with the bookings because booking, paying and editing an
event keep them in their own transaction; sending them is `webapp/reminders/services.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.bookings.models import Booking
from webapp.bookings.reminder_models import Reminder
from webapp.events.models import Event

OFFSETS_MINUTES = (24 * 60, 60, 30)


class ReminderSchedule:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def schedule_for_booking(self, booking: Booking, event: Event, now: datetime) -> int:
        """In the caller's transaction, when a booking is confirmed."""
        rows = [
            Reminder(
                booking_id=booking.id,
                event_id=event.id,
                user_id=attendee.user_id,
                offset_minutes=offset,
                due_at=event.starts_at - timedelta(minutes=offset),
                event_starts_at=event.starts_at,
            )
            for attendee in booking.attendees
            for offset in OFFSETS_MINUTES
            if event.starts_at - timedelta(minutes=offset) > now
        ]
        self.session.add_all(rows)
        return len(rows)

    async def reschedule_event(self, event: Event, now: datetime) -> int:
        """In the caller's transaction, when the event's start changes: unsent reminders for the
        old time are dropped and the confirmed attendees get fresh ones for the new time."""
        await self.cancel_for_event(event.id)
        bookings = await self.session.scalars(
            select(Booking).where(Booking.event_id == event.id, Booking.status == "confirmed")
        )
        return sum([await self.schedule_for_booking(booking, event, now) for booking in bookings])

    async def cancel_for_booking(self, booking_id: int) -> None:
        await self.session.execute(
            delete(Reminder).where(Reminder.booking_id == booking_id, Reminder.sent_at.is_(None))
        )

    async def cancel_for_event(self, event_id: int) -> None:
        await self.session.execute(delete(Reminder).where(Reminder.event_id == event_id, Reminder.sent_at.is_(None)))
