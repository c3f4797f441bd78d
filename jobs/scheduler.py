"""The scheduler: exactly one per deployment (`tidings scheduler`; inside the web process in
embedded mode). Every tick it hands due reminders, review requests and stranded outbox rows to
the workers, releases the seats of bookings left unpaid past their payment hold, and purges one
batch of old rows (jobs/retention.py). Claims are atomic, so even two schedulers running at once
send each reminder once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jobs import retention, runtime
from jobs.fanout import fan_out_review_requests
from jobs.reminders import send_event_reminder
from webapp.bookings.services import BookingService
from webapp.db import utcnow
from webapp.events.models import Event
from webapp.outbox.services import enqueue_stranded
from webapp.reminders.services import ReminderService

log = logging.getLogger("tidings.scheduler")

INTERVAL_SECONDS = float(os.environ.get("SCHEDULER_INTERVAL_SECONDS", "15"))
REVIEW_REQUEST_DELAY = timedelta(minutes=float(os.environ.get("REVIEW_REQUEST_DELAY_MINUTES", "120")))
OUTBOX_GRACE = timedelta(seconds=float(os.environ.get("OUTBOX_GRACE_SECONDS", "30")))


@dataclass(frozen=True)
class TickResult:
    reminders: int
    review_events: int
    outbox: int
    purged_reminders: int = 0
    purged_notifications: int = 0
    released: int = 0


async def claim_review_requests(session: AsyncSession, now: datetime) -> list[int]:
    candidates = (
        select(Event.id)
        .where(
            Event.status == "scheduled", Event.review_requests_at.is_(None), Event.ends_at <= now - REVIEW_REQUEST_DELAY
        )
        .limit(100)
        .with_for_update(skip_locked=True)
    )
    ids = list(await session.scalars(candidates))
    if ids:
        await session.execute(update(Event).where(Event.id.in_(ids)).values(review_requests_at=now))
    return ids


async def tick(session_factory: object, now: datetime | None = None) -> TickResult:
    """One pass. `now` is injectable so tests can move time instead of sleeping."""
    now = now or utcnow()
    async with session_factory() as session:  # type: ignore[operator]
        reminder_ids = await ReminderService(session).claim_due(now)
        await session.commit()
    for reminder_id in reminder_ids:
        send_event_reminder.send(reminder_id)
    async with session_factory() as session:  # type: ignore[operator]
        event_ids = await claim_review_requests(session, now)
        await session.commit()
    for event_id in event_ids:
        fan_out_review_requests.send(event_id)
    hold = timedelta(minutes=runtime.settings().payment_hold_minutes)
    async with session_factory() as session:  # type: ignore[operator]
        released = await BookingService(session).release_unpaid(now - hold, now)
        await BookingService(session).forget_request_keys(now)
        await session.commit()  # the notifications' outbox rows go out after this commit
    async with session_factory() as session:  # type: ignore[operator]
        stranded = await enqueue_stranded(session, OUTBOX_GRACE)
        await session.commit()
    # Retention: one bounded batch each, one transaction each, committed here.
    async with session_factory() as session:  # type: ignore[operator]
        purged_reminders = await retention.purge_sent_reminders(session, now)
        await session.commit()
    async with session_factory() as session:  # type: ignore[operator]
        purged_notifications = await retention.purge_expired_notifications(session, now)
        await session.commit()
    if reminder_ids or event_ids or stranded or released:
        log.info(
            "scheduled %d reminders, %d review fan-outs, %d stranded outbox rows; released %d unpaid bookings",
            len(reminder_ids),
            len(event_ids),
            stranded,
            len(released),
        )
    if purged_reminders or purged_notifications:
        log.info("purged %d sent reminders, %d expired notifications", purged_reminders, purged_notifications)
    return TickResult(
        len(reminder_ids), len(event_ids), stranded, purged_reminders, purged_notifications, len(released)
    )


def start(session_factory: object) -> AsyncIOScheduler:
    """Starts ticking on the running event loop."""

    async def safe_tick() -> None:
        try:
            await tick(session_factory)
        except Exception:  # noqa: BLE001 - one failed tick must not stop the schedule
            log.exception("scheduler tick failed")

    scheduler = AsyncIOScheduler()
    scheduler.add_job(
        safe_tick, "interval", seconds=INTERVAL_SECONDS, next_run_time=utcnow(), max_instances=1, coalesce=True
    )
    scheduler.start()
    return scheduler


def run_forever() -> None:
    """`tidings scheduler`: the scaled deployment's single scheduler process."""
    from jobs import runtime

    async def main() -> None:
        scheduler = start(runtime.sessionmaker())
        log.info("scheduler running every %.0f s", INTERVAL_SECONDS)
        try:
            await asyncio.Event().wait()
        finally:
            scheduler.shutdown(wait=False)

    asyncio.run(main())
