from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.auth.models import User
from webapp.db import Base, UTCDateTime, utcnow
from webapp.events.models import Event


class Booking(Base):
    __tablename__ = "bookings"
    # The scheduler looks for pending bookings whose payment hold has run out.
    __table_args__ = (
        Index("ix_bookings_status_created", "status", "created_at"),
        # The refunds a cancelled event still owes.
        Index(
            "ix_bookings_event_refund_pending",
            "event_id",
            postgresql_where=text("refund_status = 'pending'"),
            sqlite_where=text("refund_status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"), default=None)
    seats: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    failure_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    # Why a booking was cancelled when nobody chose to: "payment_not_completed" (the hold ran
    # out), "event_cancelled" (the organizer cancelled the event).
    cancel_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    # The money of a cancelled paid booking: "pending" until the gateway refunded it, "refunded".
    refund_status: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    event: Mapped[Event] = relationship(lazy="joined")
    attendees: Mapped[list[BookingAttendee]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", back_populates="booking"
    )


class BookingAttendee(Base):
    """Who a seat is for: the booker, or each accepted member of a group booking."""

    __tablename__ = "booking_attendees"

    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)

    booking: Mapped[Booking] = relationship(back_populates="attendees")
    user: Mapped[User] = relationship(lazy="joined")


class BookingRequestKey(Base):
    """An `Idempotency-Key` (or a booking form's one-time token) and the booking it made, so a retry
    answers with that booking instead of booking again. Scoped per user; kept for a day."""

    __tablename__ = "booking_request_keys"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # What the key was first used for; the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
