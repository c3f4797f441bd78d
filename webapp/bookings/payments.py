"""Paying for a booking, in three steps so no transaction is open while the gateway works:

1. `start` (its own short transaction): checks the booking under its row lock and records a
   `processing` attempt. While one is processing, a second attempt is refused, so a card is
   never charged twice for one booking.
2. `charge` (no transaction): calls the gateway, with a timeout.
3. `finish` (a second transaction): records the outcome; success confirms the booking and
   schedules its reminders, failure leaves it pending and tells the booker.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.caller import Caller
from webapp.bookings.models import Booking
from webapp.bookings.payment_gateway import (
    ChargeResult,
    PaymentGateway,
    is_plausible_card_number,
    normalize_card_number,
)
from webapp.bookings.payment_models import PROCESSING_EXPIRES, Payment
from webapp.bookings.reminders import ReminderSchedule
from webapp.bookings.services import EVENT_CANCELLED, HOLD_EXPIRED, BookingService
from webapp.db import utcnow
from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.events.models import Event
from webapp.outbox.services import enqueue_after_commit

GATEWAY_TIMEOUT_SECONDS = 20.0
GATEWAY_TIMED_OUT = ChargeResult(
    False, failure_code="gateway_timeout", failure_message="The payment provider did not answer in time."
)


class PaymentService:
    def __init__(self, session: AsyncSession, gateway: PaymentGateway) -> None:
        self.session = session
        self.gateway = gateway

    async def start(self, user: Caller, booking_id: int, card_number: str) -> Payment:
        bookings = BookingService(self.session)
        if not is_plausible_card_number(card_number):
            await bookings.get_for_booker(user, booking_id)  # someone else's: 404 first
            raise ValidationFailed({"card_number": "Enter a valid card number."})
        booking = await bookings.get_for_booker(user, booking_id, lock=True)
        if booking.status == "cancelled" and booking.cancel_reason == HOLD_EXPIRED:
            raise Conflict(
                "Payment was not completed in time, so the seats were released and nothing was charged. "
                "Book again if seats are left.",
                code="hold_expired",
            )
        if booking.cancel_reason == EVENT_CANCELLED:
            raise Conflict("This event was cancelled; nothing was charged.", code="event_not_bookable")
        if booking.status != "pending":
            raise Conflict(f"This booking is {booking.status}; there is nothing to pay.", code="booking_not_pending")
        if booking.event.status != "scheduled" or booking.event.starts_at <= utcnow():
            raise Conflict("This event can no longer be paid for.", code="event_not_bookable")
        in_flight = await self.session.scalar(
            select(Payment.id).where(
                Payment.booking_id == booking.id,
                Payment.status == "processing",
                Payment.created_at > utcnow() - PROCESSING_EXPIRES,
            )
        )
        if in_flight is not None:
            raise Conflict("A payment for this booking is already in progress.", code="payment_in_progress")
        payment = Payment(
            booking_id=booking.id,
            user_id=user.id,
            amount_cents=booking.amount_cents,
            currency=booking.currency,
            status="processing",
            card_last4=normalize_card_number(card_number)[-4:],
        )
        self.session.add(payment)
        await self.session.flush()
        return payment

    async def charge(self, payment: Payment, card_number: str) -> ChargeResult:
        """Outside any transaction: the gateway may take seconds."""
        try:
            return await asyncio.wait_for(
                self.gateway.charge(
                    amount_cents=payment.amount_cents,
                    currency=payment.currency,
                    card_number=card_number,
                    description=f"Tidings booking {payment.booking_id}",
                ),
                timeout=GATEWAY_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            return GATEWAY_TIMED_OUT

    async def finish(self, user: Caller, payment_id: int, result: ChargeResult) -> Booking:
        payment = await self.session.get(Payment, payment_id)
        if payment is None or payment.user_id != user.id:
            raise NotFound("No such payment.")
        booking = await BookingService(self.session).get_for_booker(user, payment.booking_id)
        # The lock order: the event row first (shared: a move of the event waits for this commit,
        # or has committed and its new start is read here, so the reminders are for the real
        # start), then the booking, then the payment.
        event = await self.session.get(
            Event, booking.event_id, populate_existing=True, with_for_update={"read": True, "of": Event}
        )
        assert event is not None  # an event with bookings is never deleted
        booking = await BookingService(self.session).get_for_booker(user, payment.booking_id, lock=True)
        payment = await self.session.get(Payment, payment_id, with_for_update=True, populate_existing=True)
        if payment is None or payment.status != "processing":
            raise NotFound("No such payment.")
        payment.status = "succeeded" if result.succeeded else "failed"
        payment.provider_reference = result.reference
        payment.failure_code = result.failure_code
        payment.failure_message = result.failure_message
        if not result.succeeded:
            booking.failure_reason = result.failure_message
            enqueue_after_commit(self.session, "send_payment_failed", payment_id=payment.id)
            await self.session.flush()
            return booking
        confirmed = await self.session.execute(
            update(Booking)
            .where(Booking.id == booking.id, Booking.status == "pending")
            .values(status="confirmed", confirmed_at=utcnow(), failure_reason=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.refresh(booking)
        if confirmed.rowcount != 1:  # type: ignore[attr-defined]
            # Cancelled while the gateway worked (by the booker, or with its event): the card was
            # charged for nothing, so the money goes back; the caller sees it is not confirmed.
            booking.refund_status = "pending"
            enqueue_after_commit(self.session, "refund_booking", booking_id=booking.id)
            await self.session.flush()
            return booking
        await ReminderSchedule(self.session).schedule_for_booking(booking, event, utcnow())
        enqueue_after_commit(self.session, "send_booking_confirmation", booking_id=booking.id)
        return booking

    async def attempts(self, booking: Booking) -> list[Payment]:
        statement = select(Payment).where(Payment.booking_id == booking.id).order_by(Payment.created_at.desc())
        return list(await self.session.scalars(statement))
