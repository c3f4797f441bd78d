"""Paying for a booking: every attempt is recorded; success confirms, failure leaves it pending."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.bookings.models import Booking
from webapp.bookings.services import HOLD_EXPIRED, BookingService
from webapp.db import utcnow
from webapp.errors import Conflict, PaymentDeclined, ValidationFailed
from webapp.outbox.services import enqueue_after_commit
from webapp.payments.gateway import PaymentGateway, is_plausible_card_number, normalize_card_number
from webapp.payments.models import Payment
from webapp.reminders.services import ReminderService


class PaymentService:
    def __init__(self, session: AsyncSession, gateway: PaymentGateway) -> None:
        self.session = session
        self.gateway = gateway

    async def pay(self, user: User, booking_id: int, card_number: str) -> Booking:
        if not is_plausible_card_number(card_number):
            await BookingService(self.session).get_for_booker(user, booking_id)  # someone else's: 404 first
            raise ValidationFailed({"card_number": "Enter a valid card number."})
        # Locked until commit: a second payment for the same booking waits, then finds it
        # confirmed, so the card is never charged twice.
        booking = await BookingService(self.session).get_for_booker(user, booking_id, lock=True)
        if booking.status == "cancelled" and booking.cancel_reason == HOLD_EXPIRED:
            raise Conflict(
                "Payment was not completed in time, so the seats were released and nothing was charged. "
                "Book again if seats are left.",
                code="hold_expired",
            )
        if booking.status != "pending":
            raise Conflict(f"This booking is {booking.status}; there is nothing to pay.", code="booking_not_pending")
        if booking.event.status != "scheduled" or booking.event.starts_at <= utcnow():
            raise Conflict("This event can no longer be paid for.", code="event_not_bookable")
        result = await self.gateway.charge(
            amount_cents=booking.amount_cents,
            currency=booking.currency,
            card_number=card_number,
            description=f"Tidings booking {booking.id}",
        )
        payment = Payment(
            booking_id=booking.id,
            user_id=user.id,
            amount_cents=booking.amount_cents,
            currency=booking.currency,
            status="succeeded" if result.succeeded else "failed",
            card_last4=normalize_card_number(card_number)[-4:],
            provider_reference=result.reference,
            failure_code=result.failure_code,
            failure_message=result.failure_message,
        )
        self.session.add(payment)
        if result.succeeded:
            confirmed = await self.session.execute(
                update(Booking)
                .where(Booking.id == booking.id, Booking.status == "pending")
                .values(status="confirmed", confirmed_at=utcnow(), failure_reason=None)
                .execution_options(synchronize_session=False)
            )
            if confirmed.rowcount != 1:  # type: ignore[attr-defined]
                await self.session.rollback()
                raise Conflict(
                    "This booking changed while paying; nothing was charged twice.", code="booking_not_pending"
                )
            await ReminderService(self.session).schedule_for_booking(booking, booking.event, utcnow())
            enqueue_after_commit(self.session, "send_booking_confirmation", booking_id=booking.id)
        else:
            booking.failure_reason = result.failure_message
            await self.session.flush()
            enqueue_after_commit(self.session, "send_payment_failed", payment_id=payment.id)
        await self.session.commit()
        await self.session.refresh(booking)
        if not result.succeeded:
            raise PaymentDeclined(result.failure_message or "The payment failed.", code=result.failure_code)
        return booking

    async def attempts(self, booking: Booking) -> list[Payment]:
        statement = select(Payment).where(Payment.booking_id == booking.id).order_by(Payment.created_at.desc())
        return list(await self.session.scalars(statement))
