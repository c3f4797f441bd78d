"""What must still be told off the page: one row per (notification, channel) that is due by push
or email, written in the transaction that creates the notification (see webapp.notifications.offsite)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.db import Base, UTCDateTime
from webapp.notifications.models import Notification  # noqa: F401 - the table notification_id refers to

_UNCLAIMED = text("claimed_at IS NULL")


class OffsiteDelivery(Base):
    """One notification to be told to its user by push or by email, from `due_at` on.

    The scheduler claims due rows (`claimed_at`) and writes one outbox row per user and channel
    (`outbox_id`); the sending job marks the attempt (`sending_at`) before it talks to the mail
    server and the outcome (`done_at`, `outcome`) after, so a job run again never sends what
    was sent and a crashed attempt is sent again."""

    __tablename__ = "offsite_deliveries"
    __table_args__ = (
        # The scheduler's claim: only the few rows not yet claimed are indexed, oldest due first.
        Index("ix_offsite_deliveries_due", "due_at", postgresql_where=_UNCLAIMED, sqlite_where=_UNCLAIMED),
        # The claim takes all of a user's due rows at once (one email per user and window).
        Index("ix_offsite_deliveries_user_unclaimed", "user_id", postgresql_where=_UNCLAIMED, sqlite_where=_UNCLAIMED),
        Index("ix_offsite_deliveries_notification_id", "notification_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    # No foreign key of its own: the notification's (cascading from its user) already removes the
    # row with its user, and each key checked costs every fan-out row a lookup.
    user_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(8))  # "push" or "email"
    # An email waiting for the digest: dropped if its user saw it in the page before it was due.
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    outbox_id: Mapped[int | None] = mapped_column(Integer, default=None)
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # "sent", or why it was not: "read", "archived", "obsolete", "expired", "seen", "off"
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
