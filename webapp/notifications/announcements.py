"""General announcements: an organizer to their event's confirmed attendees, an admin to everyone."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.bookings.models import Booking, BookingAttendee
from webapp.errors import Forbidden, NotFound, RateLimited, ValidationFailed
from webapp.events.models import Event
from webapp.notifications.services import NewNotification, NotificationService
from webapp.ratelimit import RateLimiter

MAX_BODY = 2000


class AnnouncementService:
    def __init__(self, session: AsyncSession, limiter: RateLimiter) -> None:
        self.session = session
        self.limiter = limiter

    async def announce(self, sender: User, title: str, body: str, event_id: int | None = None) -> int:
        """Sends a `general` notification; returns how many people it went to."""
        title, body = title.strip(), body.strip()
        errors = {}
        if not title or len(title) > 200:
            errors["title"] = "A title of 1 to 200 characters is required."
        if len(body) > MAX_BODY:
            errors["body"] = f"Use at most {MAX_BODY} characters."
        if errors:
            raise ValidationFailed(errors)
        if event_id is not None:
            event = await self.session.get(Event, event_id)
            if event is None or (event.organizer_id != sender.id and not sender.is_admin):
                raise NotFound("No such event.")
            recipients = await self._attendees(event.id)
            url = f"/events/{event.id}"
        elif sender.is_admin:
            recipients = list(await self.session.scalars(select(User.id).order_by(User.id)))
            url = "/"
        else:
            raise Forbidden("Only admins can announce to everyone; choose one of your events.")
        key = f"rate:announce:{sender.id}"
        if await self.limiter.is_blocked(key):
            raise RateLimited("Too many announcements. Try again later.", retry_after=self.limiter.retry_after())
        await self.limiter.record(key)
        announcement = uuid.uuid4().hex
        await NotificationService(self.session).notify_many(
            [
                NewNotification(
                    user_id=user_id,
                    type="general",
                    title=title,
                    body=body,
                    url=url,
                    actor_id=sender.id,
                    subject_kind="event" if event_id else None,
                    subject_id=event_id,
                    data={"announcement": announcement},
                    dedupe_key=f"announcement:{announcement}",
                )
                for user_id in recipients
            ]
        )
        await self.session.commit()
        return len(recipients)

    async def _attendees(self, event_id: int) -> list[int]:
        statement = (
            select(BookingAttendee.user_id)
            .join(Booking, Booking.id == BookingAttendee.booking_id)
            .where(Booking.event_id == event_id, Booking.status == "confirmed")
            .distinct()
            .order_by(BookingAttendee.user_id)
        )
        return list(await self.session.scalars(statement))
