from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.db import Base, UTCDateTime, utcnow

# Only rows still waiting for their job are indexed for the sweeper: finished rows pile up until
# they are purged, and the sweeper never needs them.
_PENDING = text("completed_at IS NULL AND failed_at IS NULL")


class OutboxMessage(Base):
    """Follow-up work written in the same transaction as the change that causes it.

    Handed to Dramatiq right after commit (`enqueued_at`), but finished only when its job has run:
    the job marks `completed_at` in its own transaction, together with its effect. The scheduler
    hands a row over again while it is not completed (the process died before the hand-over, or
    a queue lost the message, or a worker died mid-job), until its attempts run out or its job
    lands in the dead-letter queue (`failed_at`). Actors are idempotent, so a second run changes
    nothing."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index(
            "ix_outbox_messages_pending",
            "enqueued_at",
            "created_at",
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
        Index("ix_outbox_messages_completed_at", "completed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_name: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
