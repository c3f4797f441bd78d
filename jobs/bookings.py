"""Booking and payment notifications (confirmed, cancelled, payment failed) and refunds."""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq
from sqlalchemy import select, update

from jobs import runtime
from jobs.broker import broker as _broker  # noqa: F401 - configures Dramatiq before the actors below
from webapp.auth.models import User
from webapp.bookings.models import Booking
from webapp.bookings.payment_models import Payment
from webapp.bookings.services import EVENT_CANCELLED, HOLD_EXPIRED
from webapp.db import utcnow
from webapp.notifications.models import Notification
from webapp.notifications.organizer_news import tell_organizer
from webapp.notifications.services import NewNotification, NotificationService
from webapp.outbox.services import enqueue_after_commit
from webapp.rendering import money
from webapp.timeutil import format_in_zone

REFUND_TIMEOUT_SECONDS = 20.0


async def _people(session: Any, booking: Booking, only_booker: bool = False) -> list[User]:
    """The booker and, for a group booking, every member the booking holds a seat for."""
    ids = [booking.user_id] if only_booker else sorted({booking.user_id, *(a.user_id for a in booking.attendees)})
    return list(await session.scalars(select(User).where(User.id.in_(ids))))


def _seats(booking: Booking) -> str:
    return f"{booking.seats} seat{'s' if booking.seats != 1 else ''}"


def _cancelled_body(booking: Booking, when: str, released: bool, card_last4: str | None) -> str:
    if released:
        return f"Payment was not completed in time, so the {_seats(booking)} held for you were released · {when}"
    body = f"{_seats(booking)} · {when}"
    if booking.refund_status is not None and card_last4:
        body += f" · {money(booking.amount_cents, booking.currency)} is being refunded to the card ending {card_last4}"
    return body


async def paid_with(session: Any, booking_id: int) -> Payment | None:
    """The booking's successful payment, if it has one."""
    statement = select(Payment).where(Payment.booking_id == booking_id, Payment.status == "succeeded")
    payment: Payment | None = await session.scalar(statement.order_by(Payment.id.desc()).limit(1))
    return payment


@dramatiq.actor(queue_name="notifications")
async def send_booking_confirmation(booking_id: int, outbox_id: int | None = None) -> None:
    async with runtime.session(outbox_id) as session:
        booking = await session.get(Booking, booking_id)
        if booking is None or booking.status != "confirmed":
            return
        event = booking.event
        people = await _people(session, booking)
        service = NotificationService(session)
        await service.lock_inboxes([person.id for person in people] + [event.organizer_id])
        items = []
        for person in people:
            when = format_in_zone(event.starts_at, person.timezone)
            if person.id == booking.user_id:
                body = f"{_seats(booking)} · {when} · {event.venue}"
            else:
                body = f"A group booking holds a seat for you · {when} · {event.venue}"
            items.append(
                NewNotification(
                    user_id=person.id,
                    type="booking_confirmed",
                    title=f"Booking confirmed: {event.title}",
                    body=body,
                    url=f"/events/{event.id}",
                    data={"booking_id": booking.id, "event_id": event.id, "booking_status": "confirmed"},
                    actor_id=booking.user_id,
                    subject_kind="booking",
                    subject_id=booking.id,
                    dedupe_key=f"booking_confirmed:{booking.id}",
                )
            )
        await service.notify_many(items)
        await tell_organizer(service, event, booking, "booked")
        await session.commit()


@dramatiq.actor(queue_name="notifications")
async def send_booking_cancelled(booking_id: int, outbox_id: int | None = None) -> None:
    async with runtime.session(outbox_id) as session:
        booking = await session.get(Booking, booking_id)
        if booking is None or booking.status != "cancelled":
            return
        event = booking.event
        released = booking.cancel_reason == HOLD_EXPIRED
        # A released hold was never confirmed, so only the booker (who did not pay) hears of it.
        people = await _people(session, booking, only_booker=released)
        # A seat given back is news to the organizer; a hold that lapsed, or an event they
        # cancelled themselves, is not.
        tell = booking.confirmed_at is not None and booking.cancel_reason is None
        service = NotificationService(session)
        # Counters before notification rows (the lock order), for everyone told here at once.
        await service.lock_inboxes([person.id for person in people] + ([event.organizer_id] if tell else []))
        payment = await paid_with(session, booking.id) if booking.refund_status else None
        # The earlier confirmation now shows the booking as cancelled.
        confirmations = list(
            await session.scalars(
                select(Notification).where(
                    Notification.type == "booking_confirmed",
                    Notification.subject_kind == "booking",
                    Notification.subject_id == booking.id,
                )
            )
        )
        for confirmation in confirmations:
            await session.execute(
                update(Notification)
                .where(Notification.id == confirmation.id)
                .values(data={**confirmation.data, "booking_status": "cancelled"})
            )
        await service.notify_many(
            [
                NewNotification(
                    user_id=person.id,
                    type="booking_cancelled",
                    title=f"Booking cancelled: {event.title}",
                    body=_cancelled_body(
                        booking,
                        format_in_zone(event.starts_at, person.timezone),
                        released,
                        payment.card_last4 if person.id == booking.user_id and payment else None,
                    ),
                    url="/bookings",
                    data={
                        "booking_id": booking.id,
                        "event_id": event.id,
                        **({"reason": booking.cancel_reason} if booking.cancel_reason else {}),
                    },
                    subject_kind="booking",
                    subject_id=booking.id,
                    dedupe_key=f"booking_cancelled:{booking.id}",
                )
                for person in people
            ]
        )
        if tell:
            await tell_organizer(service, event, booking, "cancelled")
        await session.commit()


@dramatiq.actor(queue_name="notifications")
async def send_payment_failed(payment_id: int, outbox_id: int | None = None) -> None:
    async with runtime.session(outbox_id) as session:
        payment = await session.get(Payment, payment_id)
        if payment is None or payment.status != "failed":
            return
        booking = await session.get(Booking, payment.booking_id)
        if booking is None:
            return
        await NotificationService(session).notify(
            NewNotification(
                user_id=payment.user_id,
                type="payment_failed",
                title=f"Payment failed: {booking.event.title}",
                body=f"{payment.failure_message or 'The payment did not go through.'} Your seats are held; try again.",
                url=f"/bookings/{booking.id}/pay",
                data={"booking_id": booking.id, "payment_id": payment.id, "reason": payment.failure_code},
                subject_kind="booking",
                subject_id=booking.id,
                dedupe_key=f"payment_failed:{payment.id}",
            )
        )
        await session.commit()


# ---- refunds ---------------------------------------------------------------------------------


@dramatiq.actor(queue_name="notifications")
async def refund_event_bookings(event_id: int, outbox_id: int | None = None) -> None:
    """A cancelled event's refunds: one job per paid booking, each retried on its own."""
    async with runtime.session(outbox_id) as session:
        owed = await session.scalars(
            select(Booking.id)
            .where(Booking.event_id == event_id, Booking.refund_status == "pending")
            .order_by(Booking.id)
        )
        for booking_id in owed:
            enqueue_after_commit(session, "refund_booking", booking_id=booking_id)
        await session.commit()


@dramatiq.actor(queue_name="notifications")
async def refund_booking(booking_id: int, outbox_id: int | None = None) -> None:
    """Pays a cancelled booking's money back, in three steps so no transaction is open while the
    gateway works: read what is owed; ask the gateway (its idempotency key is the payment, so a
    job run twice, or at once, refunds once); record it and tell the booker. A gateway that
    fails or does not answer raises: Dramatiq retries, and the booking shows the refund pending."""
    async with runtime.session() as session:
        booking = await session.get(Booking, booking_id)
        payment = await paid_with(session, booking_id) if booking and booking.refund_status == "pending" else None
    if payment is None or payment.provider_reference is None:
        async with runtime.session(outbox_id):
            pass  # refunded already, or nothing was charged: the outbox row is marked done
        return
    result = await asyncio.wait_for(
        runtime.payment_gateway().refund(
            reference=payment.provider_reference,
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            idempotency_key=f"tidings-refund-{payment.id}",
        ),
        timeout=REFUND_TIMEOUT_SECONDS,
    )
    if not result.succeeded:
        raise RuntimeError(f"refund of payment {payment.id} refused: {result.failure_message}")
    async with runtime.session(outbox_id) as session:
        booking = await session.get(Booking, booking_id, with_for_update={"of": Booking}, populate_existing=True)
        if booking is None or booking.refund_status != "pending":
            return
        booking.refund_status = "refunded"
        await session.execute(
            update(Payment)
            .where(Payment.id == payment.id)
            .values(refund_reference=result.refund_reference, refunded_at=utcnow())
        )
        event = booking.event
        reason = "the event was cancelled" if booking.cancel_reason == EVENT_CANCELLED else "your booking was cancelled"
        await NotificationService(session).notify(
            NewNotification(
                user_id=booking.user_id,
                type="payment_refunded",
                title=f"Refund sent: {event.title}",
                body=f"{money(payment.amount_cents, payment.currency)} back to the card ending "
                f"{payment.card_last4} · {reason}. Banks take a few days to show it.",
                url="/bookings",
                data={"booking_id": booking.id, "event_id": event.id, "payment_id": payment.id},
                subject_kind="booking",
                subject_id=booking.id,
                dedupe_key=f"payment_refunded:{payment.id}",
            )
        )
        await session.commit()
