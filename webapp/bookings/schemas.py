from __future__ import annotations

from typing import Any

import msgspec

from webapp.bookings.models import Booking
from webapp.validation import Int32Field, RowIdField, Text


class BookingCreate(msgspec.Struct):
    seats: Int32Field = 1
    group_id: RowIdField | None = None


class PaymentRequest(msgspec.Struct):
    card_number: Text


def booking_json(booking: Booking) -> dict[str, Any]:
    return {
        "id": booking.id,
        "event_id": booking.event_id,
        "group_id": booking.group_id,
        "status": booking.status,
        "seats": booking.seats,
        "amount_cents": booking.amount_cents,
        "currency": booking.currency,
        "failure_reason": booking.failure_reason,
        "attendee_ids": [a.user_id for a in booking.attendees],
        "created_at": booking.created_at.isoformat(),
        "confirmed_at": booking.confirmed_at.isoformat() if booking.confirmed_at else None,
        "cancelled_at": booking.cancelled_at.isoformat() if booking.cancelled_at else None,
        "event": {
            "id": booking.event.id,
            "title": booking.event.title,
            "starts_at": booking.event.starts_at.isoformat(),
        },
    }
