from __future__ import annotations

from typing import Literal, TypedDict

import msgspec

from webapp.bookings.models import Booking
from webapp.openapi import ErrorDetail, Timestamp
from webapp.validation import Int32Field, RowIdField, Text


class BookingCreate(msgspec.Struct):
    seats: Int32Field = 1
    group_id: RowIdField | None = None


class PaymentRequest(msgspec.Struct):
    card_number: Text


class BookedEvent(TypedDict):
    id: int
    title: str
    starts_at: Timestamp


class BookingJson(TypedDict):
    id: int
    event_id: int
    group_id: int | None
    status: str
    seats: int
    amount_cents: int
    currency: str
    failure_reason: str | None
    attendee_ids: list[int]
    created_at: Timestamp
    confirmed_at: Timestamp | None
    cancelled_at: Timestamp | None
    # Why it was cancelled when the booker did not choose to: `payment_not_completed` (the hold
    # ran out) or `event_cancelled`.
    cancel_reason: str | None
    # A cancelled paid booking's money: `pending` until the gateway refunded it, then `refunded`.
    refund_status: Literal["pending", "refunded"] | None
    event: BookedEvent


class BookingPage(TypedDict):
    """The caller's bookings, newest first; pass `next_cursor` as `cursor` for the next page (null: no more)."""

    items: list[BookingJson]
    next_cursor: str | None


class PaymentDeclinedBody(TypedDict):
    """A declined payment: the error, and the booking as it stands (still pending, payable again)."""

    error: ErrorDetail
    booking: BookingJson


def booking_json(booking: Booking) -> BookingJson:
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
        "cancel_reason": booking.cancel_reason,
        "refund_status": booking.refund_status,  # type: ignore[typeddict-item]
        "event": {
            "id": booking.event.id,
            "title": booking.event.title,
            "starts_at": booking.event.starts_at.isoformat(),
        },
    }
