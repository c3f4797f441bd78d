"""Retention: the scheduler purges what nobody will look at again.

- Sent reminders, RETENTION_REMINDERS_DAYS after they were sent: the notification they produced
  stays; the row only proved the reminder went out (a claim or a resend needs it only until the
  event starts).
- Notifications whose expires_at is more than RETENTION_NOTIFICATIONS_DAYS in the past: an
  expired item has already left the unread count, so removing it changes no published count.
  The user's counter (last_seq) is never touched, so seqs are never reused and streams, which
  replay by seq, simply find fewer rows.

Each purge deletes at most RETENTION_BATCH_SIZE rows, oldest first, so a tick stays short; the
next tick takes the next batch. The functions run in the caller's transaction; the tick commits.
Rows another transaction holds are skipped (SKIP LOCKED on PostgreSQL), never waited for.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from webapp.bookings.reminder_models import Reminder
from webapp.notifications.models import Notification
from webapp.settings import get_settings

_config = get_settings()  # jobs.broker, imported first, has already refused a bad one
REMINDERS_AGE = timedelta(days=_config.retention_reminders_days)
NOTIFICATIONS_AGE = timedelta(days=_config.retention_notifications_days)
BATCH_SIZE = _config.retention_batch_size


async def purge_sent_reminders(session: AsyncSession, now: datetime) -> int:
    """Deletes one batch of reminders sent more than REMINDERS_AGE before `now`."""
    return await _purge_batch(session, Reminder, Reminder.sent_at, now - REMINDERS_AGE)


async def purge_expired_notifications(session: AsyncSession, now: datetime) -> int:
    """Deletes one batch of notifications that expired more than NOTIFICATIONS_AGE before `now`."""
    return await _purge_batch(session, Notification, Notification.expires_at, now - NOTIFICATIONS_AGE)


async def _purge_batch(
    session: AsyncSession,
    model: type[Reminder] | type[Notification],
    stamp: InstrumentedAttribute[datetime | None],
    cutoff: datetime,
) -> int:
    """Deletes the oldest BATCH_SIZE rows whose `stamp` is set and before `cutoff`."""
    batch = (
        select(model.id)
        .where(stamp.is_not(None), stamp < cutoff)
        .order_by(stamp)
        .limit(BATCH_SIZE)
        .with_for_update(skip_locked=True)
    )
    ids = list(await session.scalars(batch))
    if ids:
        await session.execute(delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False))
    return len(ids)
