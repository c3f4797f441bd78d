"""Booking and payment notifications: confirmed, cancelled, payment failed."""

from __future__ import annotations

from typing import Any

import dramatiq
from sqlalchemy import select, update

from jobs import runtime
from jobs.broker import broker as _broker  # noqa: F401 - configures Dramatiq before the actors below
from webapp.auth.models import User
from webapp.bookings.models import Booking
from webapp.bookings.payment_models import Payment
from webapp.bookings.services import HOLD_EXPIRED
from webapp.notifications.models import Notification
from webapp.notifications.organizer_news import tell_organizer
from webapp.notifications.services import NewNotification, NotificationService
from webapp.timeutil import format_in_zone


async def _people(session: Any, booking: Booking, only_booker: bool = False) -> list[User]:
    """The booker and, for a group booking, every member the booking holds a seat for."""
    ids = [booking.user_id] if only_booker else sorted({booking.user_id, *(a.user_id for a in booking.attendees)})
    return list(await session.scalars(select(User).where(User.id.in_(ids))))


def _seats(booking: Booking) -> str:
    return f"{booking.seats} seat{'s' if booking.seats != 1 else ''}"


def _cancelled_body(booking: Booking, when: str, released: bool) -> str:
    if released:
        return f"Payment was not completed in time, so the {_seats(booking)} held for you were released · {when}"
    return f"{_seats(booking)} · {when}"


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
                    body=_cancelled_body(booking, format_in_zone(event.starts_at, person.timezone), released),
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
