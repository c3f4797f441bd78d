"""Bookings: seats are reserved atomically, never beyond capacity, even under concurrency."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, case, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.caller import Caller
from webapp.bookings.models import Booking, BookingAttendee, BookingRequestKey
from webapp.bookings.payment_models import PROCESSING_EXPIRES, Payment
from webapp.bookings.reminders import ReminderSchedule
from webapp.db import insert_on_conflict, utcnow
from webapp.errors import Conflict, DomainError, NotFound, ValidationFailed
from webapp.events.models import Event
from webapp.groups.models import Group
from webapp.outbox.services import enqueue_after_commit
from webapp.pagination import DEFAULT_PAGE_SIZE, Cursor, check_limit, decode_cursor, page_of

MAX_SEATS_PER_BOOKING = 20
ACTIVE_STATUSES = ("pending", "confirmed")
HOLD_EXPIRED = "payment_not_completed"  # Booking.cancel_reason of a released hold
EVENT_CANCELLED = "event_cancelled"  # Booking.cancel_reason when the organizer cancelled the event
# Cancelling a booking that was paid for owes the money back (set on the old row's values).
OWES_REFUND = case((and_(Booking.status == "confirmed", Booking.amount_cents > 0), "pending"), else_=None)
RELEASE_BATCH = 100
MAX_REQUEST_KEY_LENGTH = 200
REQUEST_KEY_LIFETIME = timedelta(hours=24)


class RequestKeyReused(DomainError):
    """The same Idempotency-Key sent with a different request: a client bug, not a retry."""

    status_code = 422
    code = "idempotency_key_reused"


class BookingService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def book(self, user: Caller, event_id: int, seats: int, group_id: int | None = None) -> Booking:
        booking = await self._create(user, event_id, seats, group_id)
        return await self.get_for_booker(user, booking.id)

    async def book_once(
        self, user: Caller, key: str, event_id: int, seats: int, group_id: int | None = None
    ) -> tuple[Booking, bool]:
        """Books, unless this user already booked with this key: then the booking that key made
        comes back (and True, "replayed"). The caller commits.

        The key is claimed first, before the event row: a second request with the same key waits
        on it until the first commits, then finds its booking, so a retry racing the original
        books once. Only requests with the same user and key ever wait on a key, and none of them
        holds an event row meanwhile, so this does not upset the event → booking lock order. A
        refused booking rolls its key back with it: the retry tries again.
        """
        if not 1 <= len(key) <= MAX_REQUEST_KEY_LENGTH:
            raise ValidationFailed({"idempotency_key": f"Use 1 to {MAX_REQUEST_KEY_LENGTH} characters."})
        fingerprint = hashlib.sha256(json.dumps([event_id, seats, group_id]).encode()).hexdigest()
        now = utcnow()
        this_key = (BookingRequestKey.user_id == user.id, BookingRequestKey.key == key)
        await self.session.execute(
            delete(BookingRequestKey).where(*this_key, BookingRequestKey.created_at <= now - REQUEST_KEY_LIFETIME)
        )
        make_insert = insert_on_conflict(self.session)
        claimed = await self.session.scalar(
            make_insert(BookingRequestKey)
            .values(user_id=user.id, key=key, fingerprint=fingerprint, created_at=now)
            .on_conflict_do_nothing()
            .returning(BookingRequestKey.user_id)
        )
        if claimed is None:
            earlier = await self.session.get(BookingRequestKey, (user.id, key), populate_existing=True)
            if earlier is None or earlier.booking_id is None:  # only if its booking was deleted
                raise Conflict("This request's booking no longer exists; use a new key.", code="idempotency_key_stale")
            if earlier.fingerprint != fingerprint:
                raise RequestKeyReused("This Idempotency-Key was already used for a different booking request.")
            return await self.get_for_booker(user, earlier.booking_id), True
        booking = await self._create(user, event_id, seats, group_id)
        await self.session.execute(update(BookingRequestKey).where(*this_key).values(booking_id=booking.id))
        return booking, False

    async def forget_request_keys(self, now: datetime) -> int:
        """Drops keys older than a day (the scheduler's housekeeping); the caller commits."""
        result = await self.session.execute(
            delete(BookingRequestKey).where(BookingRequestKey.created_at <= now - REQUEST_KEY_LIFETIME)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _create(self, user: Caller, event_id: int, seats: int, group_id: int | None) -> Booking:
        event = await self.session.get(Event, event_id)
        if event is None:
            raise NotFound("No such event.")
        attendee_ids = [user.id]
        if group_id is not None:
            attendee_ids = await self._group_attendees(user, group_id)
            seats = len(attendee_ids)
        elif not 1 <= seats <= MAX_SEATS_PER_BOOKING:
            raise ValidationFailed({"seats": f"Book between 1 and {MAX_SEATS_PER_BOOKING} seats."})
        await self._reserve_seats(event, seats)
        # The reservation holds the event row (first in the lock order) until commit: re-read it,
        # so a move committed since the read above is what the reminders are computed from.
        await self.session.refresh(event)
        free = event.price_cents == 0
        booking = Booking(
            event_id=event.id,
            user_id=user.id,
            group_id=group_id,
            seats=seats,
            amount_cents=seats * event.price_cents,
            currency=event.currency,
            # Nothing to pay for a free event: the booking is confirmed straight away.
            status="confirmed" if free else "pending",
            confirmed_at=utcnow() if free else None,
        )
        booking.attendees = [BookingAttendee(user_id=uid) for uid in attendee_ids]
        self.session.add(booking)
        await self.session.flush()
        if free:
            await ReminderSchedule(self.session).schedule_for_booking(booking, event, utcnow())
            enqueue_after_commit(self.session, "send_booking_confirmation", booking_id=booking.id)
        return booking

    async def _reserve_seats(self, event: Event, seats: int) -> None:
        # One conditional UPDATE: the database serialises concurrent reservations on the row,
        # so the check and the increment cannot be interleaved.
        now = utcnow()
        result = await self.session.execute(
            update(Event)
            .where(
                Event.id == event.id,
                Event.status == "scheduled",
                Event.starts_at > now,
                Event.seats_booked + seats <= Event.capacity,
            )
            .values(seats_booked=Event.seats_booked + seats)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return
        await self.session.refresh(event)
        if event.status != "scheduled":
            raise Conflict("This event has been cancelled.", code="event_cancelled")
        if event.starts_at <= now:
            raise Conflict("This event has already started.", code="event_started")
        raise Conflict(f"Not enough seats left: {event.seats_left} available, {seats} requested.", code="event_full")

    async def _group_attendees(self, user: Caller, group_id: int) -> list[int]:
        group = await self.session.get(Group, group_id)
        if group is None or user.id not in {m.user_id for m in group.members}:
            raise NotFound("No such group.")
        return sorted(m.user_id for m in group.members)

    async def cancel(self, user: Caller, booking_id: int) -> Booking:
        """The booker or the event's organizer may cancel; to anyone else the booking does not exist."""
        booking = await self.session.get(Booking, booking_id)
        if booking is None or user.id not in (booking.user_id, booking.event.organizer_id):
            raise NotFound("No such booking.")
        if booking.status == "cancelled":
            raise Conflict("The booking is already cancelled.", code="booking_cancelled")
        if booking.event.starts_at <= utcnow():
            raise Conflict("The event has started; the booking can no longer be cancelled.", code="event_started")
        result = await self.session.execute(
            update(Booking)
            .where(Booking.id == booking.id, Booking.status.in_(ACTIVE_STATUSES))
            .values(status="cancelled", cancelled_at=utcnow(), refund_status=OWES_REFUND)
            .returning(Booking.refund_status)
            .execution_options(synchronize_session=False)
        )
        owed = result.one_or_none()
        if owed is None:
            raise Conflict("The booking is already cancelled.", code="booking_cancelled")
        if owed.refund_status == "pending":
            enqueue_after_commit(self.session, "refund_booking", booking_id=booking.id)
        await self.session.execute(
            update(Event)
            .where(Event.id == booking.event_id)
            .values(seats_booked=Event.seats_booked - booking.seats)
            .execution_options(synchronize_session=False)
        )
        await ReminderSchedule(self.session).cancel_for_booking(booking.id)
        enqueue_after_commit(self.session, "send_booking_cancelled", booking_id=booking.id)
        await self.session.refresh(booking)
        await self.session.refresh(booking.event)
        return booking

    async def cancel_for_event(self, event: Event, now: datetime) -> int:
        """The organizer cancelled `event` (the caller holds its row lock): every booking of it
        is cancelled too, and those paid for owe their money back (the `refund_event_bookings`
        job pays it). Returns how many refunds are owed."""
        owed = await self.session.scalars(
            update(Booking)
            .where(Booking.event_id == event.id, Booking.status.in_(ACTIVE_STATUSES))
            .values(status="cancelled", cancelled_at=now, cancel_reason=EVENT_CANCELLED, refund_status=OWES_REFUND)
            .returning(Booking.refund_status)
            .execution_options(synchronize_session=False)
        )
        refunds = sum(1 for status in owed if status == "pending")
        if refunds:
            enqueue_after_commit(self.session, "refund_event_bookings", event_id=event.id)
        return refunds

    async def release_unpaid(self, created_before: datetime, now: datetime) -> list[int]:
        """Cancels pending bookings made before `created_before` (their payment hold ran out) and
        returns their seats; the caller (the scheduler tick) commits. Returns the released ids.

        The claim is one conditional UPDATE (still pending, still expired, no payment in flight),
        so a payment racing it either started first (the booking is skipped until its outcome is
        recorded) or finds the booking cancelled (409, no charge).
        """
        # A booking whose payment is in flight (the gateway is being called right now, so judged
        # by the real clock, not the tick's) is left for a later tick: the outcome is recorded in
        # a moment, and a charged card must find its seats.
        paying = exists().where(
            Payment.booking_id == Booking.id,
            Payment.status == "processing",
            Payment.created_at > utcnow() - PROCESSING_EXPIRES,
        )
        expired = (Booking.status == "pending", Booking.created_at <= created_before, ~paying)
        event_ids = list(
            await self.session.scalars(
                select(Booking.event_id).where(*expired).distinct().order_by(Booking.event_id).limit(RELEASE_BATCH)
            )
        )
        if not event_ids:
            return []
        # Lock order: event rows, then booking rows.
        await self.session.execute(select(Event.id).where(Event.id.in_(event_ids)).order_by(Event.id).with_for_update())
        claimable = (
            select(Booking.id)
            .where(*expired, Booking.event_id.in_(event_ids))
            .order_by(Booking.id)
            .limit(RELEASE_BATCH)
            .with_for_update(skip_locked=True)
        )
        ids = list(await self.session.scalars(claimable))
        if not ids:
            return []
        released = await self.session.execute(
            update(Booking)
            .where(Booking.id.in_(ids), *expired)
            .values(status="cancelled", cancelled_at=now, cancel_reason=HOLD_EXPIRED)
            .returning(Booking.id, Booking.event_id, Booking.seats)
            .execution_options(synchronize_session=False)
        )
        seats_by_event: dict[int, int] = defaultdict(int)
        released_ids = []
        for booking_id, event_id, seats in released.all():
            seats_by_event[event_id] += seats
            released_ids.append(booking_id)
            # A pending booking has no reminders to cancel; the booker is told why it went.
            enqueue_after_commit(self.session, "send_booking_cancelled", booking_id=booking_id)
        for event_id in sorted(seats_by_event):
            await self.session.execute(
                update(Event)
                .where(Event.id == event_id)
                .values(seats_booked=Event.seats_booked - seats_by_event[event_id])
                .execution_options(synchronize_session=False)
            )
        return sorted(released_ids)

    async def get_for_booker(self, user: Caller, booking_id: int, lock: bool = False) -> Booking:
        """The booker's booking. `lock` holds its row until the transaction ends (PostgreSQL;
        SQLite serialises writers anyway), for changes that must not run twice at once."""
        # populate_existing: a booking created in this session must come back with its
        # relationships loaded, not as the half-filled object that was added.
        booking = await self.session.get(
            Booking, booking_id, populate_existing=True, with_for_update={"of": Booking} if lock else None
        )
        if booking is None or booking.user_id != user.id:
            raise NotFound("No such booking.")
        return booking

    async def list_for_user(self, user: Caller) -> list[Booking]:
        """Bookings the user made, and group bookings that hold a seat for them."""
        return list(await self.session.scalars(self._of_user(user)))

    async def page_for_user(
        self, user: Caller, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> tuple[list[Booking], str | None]:
        """One page of `list_for_user`, newest first (ties by id), and the cursor of the next."""
        check_limit(limit)
        before = decode_cursor(cursor)
        statement = self._of_user(user).order_by(Booking.id.desc())
        if before is not None:
            statement = statement.where(
                or_(
                    Booking.created_at < before.moment,
                    and_(Booking.created_at == before.moment, Booking.id < before.row_id),
                )
            )
        rows = list(await self.session.scalars(statement.limit(limit + 1)))
        return page_of(rows, limit, lambda b: Cursor(b.created_at, b.id))

    def _of_user(self, user: Caller) -> Select[Booking]:
        attends = exists().where(BookingAttendee.booking_id == Booking.id, BookingAttendee.user_id == user.id)
        return select(Booking).where(or_(Booking.user_id == user.id, attends)).order_by(Booking.created_at.desc())

    async def attendees_of(self, organizer: Caller, event_id: int) -> list[Booking]:
        event = await self.session.get(Event, event_id)
        if event is None or event.organizer_id != organizer.id:
            raise NotFound("No such event.")
        statement = (
            select(Booking)
            .where(
                Booking.event_id == event_id,
                # A cancelled event still shows who held seats, and what became of their money.
                or_(Booking.status.in_(ACTIVE_STATUSES), Booking.cancel_reason == EVENT_CANCELLED),
            )
            .order_by(Booking.created_at)
        )
        return list(await self.session.scalars(statement))

    async def has_confirmed_seat(self, user_id: int, event_id: int) -> bool:
        statement = select(
            exists().where(
                Booking.event_id == event_id,
                Booking.status == "confirmed",
                BookingAttendee.booking_id == Booking.id,
                BookingAttendee.user_id == user_id,
            )
        )
        return bool(await self.session.scalar(statement))
