from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.db import Base, UTCDateTime, utcnow


class Reminder(Base):
    """A reminder owed to one attendee of one booking, `offset_minutes` before the event starts.

    Created when the booking is confirmed, recomputed in the same transaction when the event
    moves, deleted when the event or the booking is cancelled."""

    __tablename__ = "event_reminders"
    __table_args__ = (
        UniqueConstraint(
            "booking_id", "user_id", "offset_minutes", "event_starts_at", name="uq_event_reminders_booking_user_offset"
        ),
        Index("ix_event_reminders_due", "sent_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    offset_minutes: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The start time this reminder was computed for: a reminder never speaks of an old time.
    event_starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
