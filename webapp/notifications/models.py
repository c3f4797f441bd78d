from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.auth.models import User
from webapp.db import Base, UTCDateTime, utcnow
from webapp.deliveries.models import DeliveryReport  # noqa: F401 - the table report_id refers to

NotificationType = Literal[
    "booking_confirmed",
    "booking_cancelled",
    "event_reminder",
    "event_cancelled",
    "event_updated",
    "group_invitation",
    "payment_failed",
    "review_request",
    "general",
    # Beyond the nine of the brief: for organizers, group owners, and refunds.
    "event_bookings",
    "review_received",
    "invitation_answered",
    "payment_refunded",
]
NOTIFICATION_TYPES: tuple[str, ...] = get_args(NotificationType)
TITLE_MAX = 200  # the column's length
BODY_MAX = 5000


class Notification(Base):
    """One item in a user's inbox. The database is the mailbox: streams replay from here by seq."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("user_id", "seq", name="uq_notifications_user_seq"),
        # Idempotency: the same fact told twice to the same person is stored once.
        UniqueConstraint("user_id", "dedupe_key", name="uq_notifications_user_dedupe_key"),
        # Unread count, unread listing, mark-all-read.
        Index("ix_notifications_user_unread", "user_id", "read_at"),
        # What has been said about one subject (cancellations make reminders obsolete, updates
        # collapse, a cancelled booking's confirmation is annotated).
        Index("ix_notifications_subject", "subject_kind", "subject_id", "type"),
        # The inbox filtered by type, newest first, paged by seq.
        Index("ix_notifications_user_type_seq", "user_id", "type", "seq"),
        # mark_seen: only the few unseen rows, however long the history.
        Index(
            "ix_notifications_user_unseen",
            "user_id",
            postgresql_where=text("seen_at IS NULL"),
            sqlite_where=text("seen_at IS NULL"),
        ),
        # Retention: expired rows, oldest first (most rows never expire and stay out of it).
        Index(
            "ix_notifications_expires_at",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
            sqlite_where=text("expires_at IS NOT NULL"),
        ),
        # The dropdown and the inbox's other filters, newest first, without walking past archived
        # rows: after "archive all read" nearly all of a long history is archived, and the
        # (user_id, seq) index would step over every one of them to find the few left.
        Index(
            "ix_notifications_user_inbox",
            "user_id",
            "seq",
            postgresql_where=text("archived_at IS NULL"),
            sqlite_where=text("archived_at IS NULL"),
        ),
        # The inbox's "Archived" filter, newest first: only archived rows are indexed.
        Index(
            "ix_notifications_user_archived",
            "user_id",
            "seq",
            postgresql_where=text("archived_at IS NOT NULL"),
            sqlite_where=text("archived_at IS NOT NULL"),
        ),
        # A delivery report's counts: only the rows a report sent (most have none) are indexed.
        Index(
            "ix_notifications_report_id",
            "report_id",
            postgresql_where=text("report_id IS NOT NULL"),
            sqlite_where=text("report_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The user's own gap-free sequence number, assigned in the creating transaction; the SSE id.
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(String(500), default="/")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The person whose act it tells (the inviter, the announcer, the reviewer, the one booker of
    # an organizer's news); None when no one person caused it.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    subject_kind: Mapped[str | None] = mapped_column(String(32), default=None)
    subject_id: Mapped[int | None] = mapped_column(Integer, default=None)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Set when a later fact made this item wrong (a reminder for a cancelled event, an update
    # merged into a newer one): it leaves the unread count but stays in the history.
    obsolete_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Put away by its user: out of the dropdown, the inbox's other filters and every count, but
    # kept as it was (read or not), so unarchiving brings it back unchanged.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The delivery report of the fan-out that wrote it (announcements, event updates and
    # cancellations), and when it was first written to a live stream of its recipient (set in
    # batches by webapp.notifications.delivered, a moment after the write).
    report_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_reports.id", ondelete="SET NULL"), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    # Loaded with the rows in one more query (only for rows that have an actor); never joined,
    # so rows can still be locked FOR UPDATE.
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id], lazy="selectin")


class NotificationCounter(Base):
    """Per-user mailbox cursor. Its row lock serialises everything that numbers or recounts a
    user's notifications, so seqs are gap-free and every published count has a version."""

    __tablename__ = "notification_counters"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every change to the user's inbox (new item, read, unread), so tabs can
    # tell a newer unread count from an older one that arrived late.
    version: Mapped[int] = mapped_column(Integer, default=0)


class ExpiryWatermark(Base):
    """How far the scheduler has told open tabs about items that expired: one row. Each tick tells
    the users whose unread items expired after this moment and up to its own, then moves it, so an
    expiry is announced once however many schedulers take turns."""

    __tablename__ = "notification_expiry_watermark"

    id: Mapped[int] = mapped_column(primary_key=True)
    told_up_to: Mapped[datetime] = mapped_column(UTCDateTime)
