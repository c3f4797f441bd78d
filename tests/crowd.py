"""A big event for fan-out tests and benchmarks: one organizer, N attendees with confirmed
bookings, inserted in bulk (the services would take minutes for 10,000 people)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.bookings.models import Booking, BookingAttendee
from webapp.db import utcnow
from webapp.events.models import Event

UNUSABLE_PASSWORD_HASH = "!"  # nobody logs in as these people


async def seed_crowd(session: AsyncSession, attendees: int, tag: str = "crowd") -> tuple[int, int]:
    """Returns (organizer id, event id)."""
    organizer = User(
        email=f"{tag}-organizer@example.com", name="Organizer", password_hash=UNUSABLE_PASSWORD_HASH, timezone="UTC"
    )
    session.add(organizer)
    await session.flush()
    start = utcnow().replace(microsecond=0) + timedelta(days=5)
    event = Event(
        organizer_id=organizer.id,
        title="Stadium Show",
        venue="Arena",
        description="",
        timezone="Europe/Berlin",
        starts_at=start,
        ends_at=start + timedelta(hours=3),
        capacity=attendees,
        seats_booked=attendees,
        price_cents=0,
        currency="EUR",
    )
    session.add(event)
    await session.flush()
    people = [
        {
            "email": f"{tag}-fan{i}@example.com",
            "name": f"Fan {i}",
            "password_hash": UNUSABLE_PASSWORD_HASH,
            "timezone": "Europe/Berlin",
        }
        for i in range(attendees)
    ]
    user_ids = [
        row[0] for row in await session.execute(insert(User).returning(User.id, sort_by_parameter_order=True), people)
    ]
    bookings = await session.execute(
        insert(Booking).returning(Booking.id, sort_by_parameter_order=True),
        [
            {
                "event_id": event.id,
                "user_id": uid,
                "seats": 1,
                "amount_cents": 0,
                "currency": "EUR",
                "status": "confirmed",
                "confirmed_at": utcnow(),
            }
            for uid in user_ids
        ],
    )
    await session.execute(
        insert(BookingAttendee),
        [{"booking_id": booking_id, "user_id": uid} for (booking_id,), uid in zip(bookings, user_ids, strict=True)],
    )
    await session.commit()
    return organizer.id, event.id
