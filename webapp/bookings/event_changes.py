"""An organizer's edit or cancellation of an event. Each bumps the event's version, keeps the
reminders of its confirmed bookings true to it in the same transaction (a cancellation cancels
the bookings too, owing the paid ones a refund), and queues the fan-out job that tells the
attendees. It reaches the bookings, so it lives with them, above the events."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.caller import Caller
from webapp.bookings.reminders import ReminderSchedule
from webapp.bookings.services import BookingService
from webapp.db import utcnow
from webapp.deliveries.models import ReportKind
from webapp.deliveries.services import DeliveryReportService, event_change_key
from webapp.errors import Conflict
from webapp.events.models import Event, EventChange
from webapp.events.services import EventDetails, EventService, normalized, validate_details
from webapp.outbox.services import enqueue_after_commit


class EventChangeService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def update(self, organizer: Caller, event_id: int, changes: dict[str, object]) -> Event:
        # The row lock (first in the lock order) makes simultaneous edits take turns: each one
        # reads what the other committed and gets its own version.
        event = await EventService(self.session).get_organized(organizer, event_id, lock=True)
        if event.status == "cancelled":
            raise Conflict("A cancelled event cannot be edited.", code="event_cancelled")
        now = utcnow()
        if event.starts_at <= now:
            raise Conflict("An event that has started cannot be edited.", code="event_started")
        current = EventDetails.of(event)
        proposed = normalized(replace(current, **changes))  # type: ignore[arg-type]
        if proposed == current:
            return event
        validate_details(proposed, now=now, seats_booked=event.seats_booked)
        for name, value in proposed.__dict__.items():
            setattr(event, name, value)
        event.version += 1
        event.updated_at = now
        if proposed.starts_at != current.starts_at:
            await ReminderSchedule(self.session).reschedule_event(event, now)
        news = attendee_facing_changes(current, proposed)
        if news:
            # Kept per version: the fan-out job tells from these, whatever order jobs run in.
            self.session.add(EventChange(event_id=event.id, version=event.version, changes=news, created_at=now))
            await self._tell_attendees(
                organizer, event, "event_updated", "Changed: " + ", ".join(n.replace("_", " ") for n in news), news
            )
        await self.session.flush()
        return event

    async def cancel(self, organizer: Caller, event_id: int) -> Event:
        event = await EventService(self.session).get_organized(organizer, event_id, lock=True)
        if event.status == "cancelled":
            raise Conflict("The event is already cancelled.", code="event_cancelled")
        event.status = "cancelled"
        event.cancelled_at = utcnow()
        event.version += 1
        # Its bookings end with it (the event row is locked: first in the lock order), and the
        # paid ones are refunded by a job, outside any transaction.
        await BookingService(self.session).cancel_for_event(event, event.cancelled_at)
        await ReminderSchedule(self.session).cancel_for_event(event.id)
        await self._tell_attendees(organizer, event, "event_cancelled", f"Cancelled: {event.title}")
        await self.session.flush()
        return event

    async def _tell_attendees(
        self, organizer: Caller, event: Event, kind: ReportKind, title: str, changes: dict[str, list[str]] | None = None
    ) -> None:
        """Opens the delivery report of this version and queues the fan-out that tells the attendees."""
        report_id = await DeliveryReportService(self.session).open(
            key=event_change_key(kind, event.id, event.version),
            kind=kind,
            title=title,
            event_id=event.id,
            sender_id=organizer.id,
        )
        enqueue_after_commit(
            self.session,
            "fan_out_event_change",
            event_id=event.id,
            version=event.version,
            kind="cancelled" if kind == "event_cancelled" else "updated",
            report_id=report_id,
            **({} if changes is None else {"changes": changes}),
        )


ATTENDEE_FACING = ("title", "starts_at", "ends_at", "venue")


def attendee_facing_changes(before: EventDetails, after: EventDetails) -> dict[str, list[str]]:
    """What attendees are told about: old → new, times as ISO strings."""
    changes = {}
    for name in ATTENDEE_FACING:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes[name] = [old.isoformat(), new.isoformat()] if isinstance(old, datetime) else [old, new]
    return changes
