"""General announcements: an organizer to their event's confirmed attendees, an admin to everyone.

The request only checks and records the announcement (its delivery report and an outbox row);
the fan-out job writes the notifications in chunks, like every other notification that goes to
many people."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.bookings.models import Booking, BookingAttendee
from webapp.deliveries.services import DeliveryReportService, announcement_key
from webapp.errors import Forbidden, NotFound, RateLimited, ValidationFailed
from webapp.events.models import Event
from webapp.outbox.services import enqueue_after_commit
from webapp.ratelimit import RateLimiter

MAX_BODY = 2000


@dataclass(frozen=True)
class Announced:
    recipients: int  # as counted now; the fan-out counts again when it runs (its report says)
    report_id: int


class AnnouncementService:
    def __init__(self, session: AsyncSession, limiter: RateLimiter) -> None:
        self.session = session
        self.limiter = limiter

    async def announce(self, sender: User, title: str, body: str, event_id: int | None = None) -> Announced:
        """Queues a `general` notification; says how many people it goes to, and its report."""
        title, body = title.strip(), body.strip()
        errors = {}
        if not title or len(title) > 200:
            errors["title"] = "A title of 1 to 200 characters is required."
        if len(body) > MAX_BODY:
            errors["body"] = f"Use at most {MAX_BODY} characters."
        if errors:
            raise ValidationFailed(errors)
        # The limit lives in Redis: checked and counted before the transaction touches a row.
        key = f"rate:announce:{sender.id}"
        if await self.limiter.is_blocked(key):
            raise RateLimited("Too many announcements. Try again later.", retry_after=self.limiter.retry_after())
        await self.limiter.record(key)
        if event_id is not None:
            event = await self.session.get(Event, event_id)
            if event is None or (event.organizer_id != sender.id and not sender.is_admin):
                raise NotFound("No such event.")
            recipients = await self._attendee_count(event.id)
        elif sender.is_admin:
            recipients = int(await self.session.scalar(select(func.count(User.id))) or 0)
        else:
            raise Forbidden("Only admins can announce to everyone; choose one of your events.")
        token = uuid.uuid4().hex
        report_id = await DeliveryReportService(self.session).open(
            key=announcement_key(token), kind="announcement", title=title, event_id=event_id, sender_id=sender.id
        )
        enqueue_after_commit(
            self.session,
            "fan_out_announcement",
            announcement=token,
            sender_id=sender.id,
            title=title,
            body=body,
            event_id=event_id,
            report_id=report_id,
        )
        return Announced(recipients=recipients, report_id=report_id)

    async def _attendee_count(self, event_id: int) -> int:
        statement = (
            select(func.count(func.distinct(BookingAttendee.user_id)))
            .join(Booking, Booking.id == BookingAttendee.booking_id)
            .where(Booking.event_id == event_id, Booking.status == "confirmed")
        )
        return int(await self.session.scalar(statement) or 0)
