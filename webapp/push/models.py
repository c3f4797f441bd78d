"""Web Push subscriptions, one per browser (device) a user enabled push on, and which of them a
push job already reached, so a retried job does not notify a device twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.auth.models import User  # noqa: F401 - the table user_id refers to
from webapp.db import Base, UTCDateTime, utcnow
from webapp.outbox.models import OutboxMessage  # noqa: F401 - the table outbox_id refers to

ENDPOINT_MAX = 1000  # the big push services' endpoints are under 300 characters
DEVICE_MAX = 100


class PushSubscription(Base):
    """A browser's `PushSubscription`: where to POST (the endpoint, unique: one browser profile
    has one) and the keys its payloads are encrypted for (RFC 8291)."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (Index("ix_push_subscriptions_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(ENDPOINT_MAX), unique=True)
    p256dh: Mapped[str] = mapped_column(String(100))  # base64url, 65 bytes
    auth: Mapped[str] = mapped_column(String(40))  # base64url, 16 bytes
    # "Firefox on Android", from the User-Agent at subscribe time: how the user tells them apart.
    device: Mapped[str] = mapped_column(String(DEVICE_MAX), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PushDelivery(Base):
    """One device reached by one push job (its outbox row). Written after the push service
    accepted the message; a retry of the job skips the devices listed here. Deleted with the
    outbox row when the outbox is purged."""

    __tablename__ = "push_deliveries"
    __table_args__ = (
        UniqueConstraint("outbox_id", "subscription_id", name="uq_push_deliveries_outbox_subscription"),
        Index("ix_push_deliveries_subscription_id", "subscription_id"),  # removing a device deletes its rows
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("push_subscriptions.id", ondelete="CASCADE"))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
