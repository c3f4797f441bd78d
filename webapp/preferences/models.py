"""What a user changed from the defaults: channel switches, muted events, quiet hours.

Only differences from DEFAULT_CHANNELS are stored (a user who never opens the preferences page
has no rows), so changing a default later reaches everyone who did not choose otherwise.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.auth.models import User  # noqa: F401 - the table user_id refers to
from webapp.db import Base, UTCDateTime, utcnow
from webapp.events.models import Event  # noqa: F401 - the table event_id refers to

MINUTES_PER_DAY = 24 * 60


class ChannelPreference(Base):
    """One switched cell of a user's grid: (type, channel) on or off against its default."""

    __tablename__ = "channel_preferences"
    __table_args__ = (
        # The plan reads one type for a chunk of users: (type, user_id) serves `type = ? AND
        # user_id IN (…)`; the primary key serves one user's whole grid.
        Index("ix_channel_preferences_type_user", "type", "user_id"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)


class EventMute(Base):
    """ "Stop updates about this event": its notifications stay in the inbox, off-page channels stop."""

    __tablename__ = "event_mutes"
    __table_args__ = (
        # The plan asks "which of these users muted this event": event first.
        Index("ix_event_mutes_event_user", "event_id", "user_id"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QuietHours(Base):
    """A user's daily quiet window, as minutes after local midnight in the user's own zone
    (users.timezone); no row, no quiet hours. Minutes rather than a TIME column: the same
    integers on SQLite and PostgreSQL, and no driver's idea of a time zone attached."""

    __tablename__ = "quiet_hours"
    __table_args__ = (
        CheckConstraint(f"start_minute >= 0 AND start_minute < {MINUTES_PER_DAY}", name="quiet_start_in_day"),
        CheckConstraint(f"end_minute >= 0 AND end_minute < {MINUTES_PER_DAY}", name="quiet_end_in_day"),
        CheckConstraint("start_minute <> end_minute", name="quiet_window_not_empty"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)
