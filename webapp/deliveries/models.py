"""A delivery report: one announcement, event update or cancellation sent to many people.

The row is written with the fact it reports on (the announcement request, the edit or the
cancellation), and the notifications its fan-out writes point back at it (notifications.report_id).
Its counts are computed from those notifications when asked (webapp.notifications.delivery_reports);
the row itself holds only what the notifications cannot tell: what was sent, by whom, and how many
recipients the fan-out planned. It lives below the events and bookings, which open reports, and
refers to events and users by table name only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.db import Base, UTCDateTime, utcnow

ReportKind = Literal["announcement", "event_updated", "event_cancelled"]
REPORT_KINDS: tuple[str, ...] = get_args(ReportKind)
TITLE_MAX = 200


class DeliveryReport(Base):
    __tablename__ = "delivery_reports"
    __table_args__ = (
        # An event's reports, newest first; with event_id IS NULL, the announcements to everyone.
        Index("ix_delivery_reports_event_id_id", "event_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # One report per fact, whoever writes it and however often: `announcement:<token>`,
    # `event_updated:<event>:<version>`, `event_cancelled:<event>:<version>`.
    key: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), default=None)
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    # An announcement's text: a later announcement of the same sender to the same people writes
    # this one first when its own fan-out has not yet (webapp.notifications.announcements), so
    # it must be able to tell it. None for event changes and for announcements sent before.
    body: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # How many people the fan-out planned to tell; None until its first job has counted them.
    recipients: Mapped[int | None] = mapped_column(Integer, default=None)
