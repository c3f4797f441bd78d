"""What an organizer hears about the bookings on their events: one unread item per event that keeps
counting ("3 new bookings for Rooftop Jazz"), not one item per booking.

Each new booking or cancellation replaces the organizer's unread item about the event with one
that counts it too; once the organizer has read it, the next one starts a new count. The item
lists the booking ids it counts, so a job that runs twice tells nothing twice."""

from __future__ import annotations

from typing import Literal

from webapp.bookings.models import Booking
from webapp.events.models import Event
from webapp.notifications.services import NewNotification, NotificationService

Change = Literal["booked", "cancelled"]
CHANGES: tuple[Change, ...] = ("booked", "cancelled")


async def tell_organizer(service: NotificationService, event: Event, booking: Booking, change: Change) -> None:
    """In the caller's transaction, which has already locked the organizer's inbox together with
    the other inboxes it changes (NotificationService.lock_inboxes: one lock order)."""
    organizer_id = event.organizer_id
    if organizer_id == booking.user_id:
        return  # their own booking is not news to them
    told = await service.about("event", event.id, ("event_bookings",), [organizer_id])
    if any(booking.id in n.data.get(change, []) for n in told):
        return
    waiting = [n for n in told if n.read_at is None]
    # Read now, under the lock: the jobs of bookings made at once take turns here, and the last
    # one's item must count every seat committed before it.
    await service.session.refresh(event, ["seats_booked"])
    counted: dict[str, list[int]] = {key: [i for n in waiting for i in n.data.get(key, [])] for key in CHANGES}
    counted[change].append(booking.id)
    await service.mark_obsolete(waiting)
    await service.notify(
        NewNotification(
            user_id=organizer_id,
            type="event_bookings",
            title=f"{_counts(len(counted['booked']), len(counted['cancelled']))} for {event.title}",
            body=f"{event.seats_booked} of {event.capacity} seats booked",
            url=f"/organizer/events/{event.id}",
            data={"event_id": event.id, **counted},
            # One person's booking (or cancellation) is theirs; a count of several is no one's.
            actor_id=booking.user_id if len(counted["booked"]) + len(counted["cancelled"]) == 1 else None,
            subject_kind="event",
            subject_id=event.id,
            dedupe_key=f"event_bookings:{event.id}:{change}:{booking.id}",
        )
    )


def _counts(booked: int, cancelled: int) -> str:
    parts = []
    if booked:
        parts.append(f"{booked} new booking{'s' if booked != 1 else ''}")
    if cancelled:
        parts.append(f"{cancelled} cancellation{'s' if cancelled != 1 else ''}")
    return " and ".join(parts)
