"""Rows the API refuses to create (events in the past, bookings confirmed by hand), written
straight through the `session` fixture."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from webapp.bookings.models import Booking, BookingAttendee
from webapp.events.models import Event


async def insert_event(
    session: AsyncSession,
    organizer_id: int,
    *,
    starts_in: timedelta,
    duration: timedelta = timedelta(hours=2),
    **overrides: Any,
) -> Event:
    starts_at = datetime.now(UTC).replace(microsecond=0) + starts_in
    values: dict[str, Any] = {
        "organizer_id": organizer_id,
        "title": "Row Event",
        "description": "",
        "venue": "Back Room",
        "starts_at": starts_at,
        "ends_at": starts_at + duration,
        "timezone": "UTC",
        "capacity": 10,
        "price_cents": 1000,
        "currency": "EUR",
    }
    values.update(overrides)
    event = Event(**values)
    session.add(event)
    await session.commit()
    return event


async def insert_booking(
    session: AsyncSession, event: Event, user_id: int, *, seats: int = 1, status: str = "confirmed"
) -> Booking:
    booking = Booking(
        event_id=event.id,
        user_id=user_id,
        seats=seats,
        amount_cents=seats * event.price_cents,
        currency=event.currency,
        status=status,
        confirmed_at=datetime.now(UTC) if status == "confirmed" else None,
        attendees=[BookingAttendee(user_id=user_id)],
    )
    session.add(booking)
    event.seats_booked += seats if status in ("pending", "confirmed") else 0
    await session.commit()
    return booking
