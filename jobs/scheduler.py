"""The scheduler: exactly one per deployment (`tidings scheduler`; inside the web process in
embedded mode). Every tick it claims due reminders and review requests, writing their jobs as
outbox rows in the claim's own transaction (a send that fails is retried, never lost), releases
the seats of bookings left unpaid past their payment hold, hands over again the outbox rows whose
job has not completed, and purges old rows (completed outbox rows here, sent reminders and expired
notifications in jobs/retention.py). Each step is its own transaction, committed here. Claims are
atomic, so even two schedulers running at once send each reminder once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jobs import retention, runtime
from jobs.fanout import fan_out_review_requests
from jobs.reminders import send_event_reminder
from webapp.bookings.services import BookingService
from webapp.db import utcnow
from webapp.events.models import Event
from webapp.ops.sampling import OpsSampler
from webapp.outbox.services import enqueue_after_commit, purge_completed, redeliver_unfinished
from webapp.reminders.services import ReminderService
from webapp.settings import get_settings

log = logging.getLogger("tidings.scheduler")

_config = get_settings()  # jobs.broker, imported first, has already refused a bad one
INTERVAL_SECONDS = _config.scheduler_interval_seconds
REVIEW_REQUEST_DELAY = timedelta(minutes=_config.review_request_delay_minutes)
# A row never handed over (the process died right after commit, the broker was down) goes out
# again after OUTBOX_GRACE; one handed over but not completed after OUTBOX_REDELIVER (the queue lost
# it, or its worker died mid-job). 30 s plus one 15 s tick plus the run itself keeps a dead worker's
# job under a minute; a job legitimately running longer than that may run twice (harmless).
OUTBOX_GRACE = timedelta(seconds=_config.outbox_grace_seconds)
OUTBOX_REDELIVER = timedelta(seconds=_config.outbox_redeliver_seconds)
# Each further hand-over waits twice as long: 8 attempts span about 2 hours of worker outage.
OUTBOX_MAX_ATTEMPTS = _config.outbox_max_attempts
OUTBOX_RETENTION = timedelta(days=_config.outbox_retention_days)


@dataclass(frozen=True)
class TickResult:
    reminders: int
    review_events: int
    outbox: int
    purged_outbox: int = 0
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
    """One pass, one transaction per step. `now` is injectable so tests can move time instead of
    sleeping."""
    now = now or utcnow()
    async with session_factory() as session:  # type: ignore[operator]
        reminder_ids = await ReminderService(session).claim_due(now)
        for reminder_id in reminder_ids:
            enqueue_after_commit(session, send_event_reminder.actor_name, reminder_id=reminder_id)
        await session.commit()
    async with session_factory() as session:  # type: ignore[operator]
        event_ids = await claim_review_requests(session, now)
        for event_id in event_ids:
            enqueue_after_commit(session, fan_out_review_requests.actor_name, event_id=event_id)
        await session.commit()
    hold = timedelta(minutes=runtime.settings().payment_hold_minutes)
    async with session_factory() as session:  # type: ignore[operator]
        released = await BookingService(session).release_unpaid(now - hold, now)
        await BookingService(session).forget_request_keys(now)
        await session.commit()  # the notifications' outbox rows go out after this commit
    async with session_factory() as session:  # type: ignore[operator]
        again = await redeliver_unfinished(session, now, OUTBOX_GRACE, OUTBOX_REDELIVER, OUTBOX_MAX_ATTEMPTS)
        purged_outbox = await purge_completed(session, now - OUTBOX_RETENTION)
        await session.commit()
    # Retention: one bounded batch each, one transaction each, committed here.
    async with session_factory() as session:  # type: ignore[operator]
        purged_reminders = await retention.purge_sent_reminders(session, now)
        await session.commit()
    async with session_factory() as session:  # type: ignore[operator]
        purged_notifications = await retention.purge_expired_notifications(session, now)
        await session.commit()
    if reminder_ids or event_ids or again or released:
        log.info(
            "scheduled %d reminders, %d review fan-outs; handed over %d unfinished outbox rows again; "
            "released %d unpaid bookings",
            len(reminder_ids),
            len(event_ids),
            again,
            len(released),
        )
    if purged_outbox or purged_reminders or purged_notifications:
        log.info(
            "purged %d completed outbox rows, %d sent reminders, %d expired notifications",
            purged_outbox,
            purged_reminders,
            purged_notifications,
        )
    return TickResult(
        len(reminder_ids),
        len(event_ids),
        again,
        purged_outbox=purged_outbox,
        purged_reminders=purged_reminders,
        purged_notifications=purged_notifications,
        released=len(released),
    )


_ticking: set[asyncio.Task[Any]] = set()


async def ticks_finished(within: float) -> None:
    """Waits (at most `within` seconds) for a tick in progress: a tick cancelled halfway through a
    statement can leave its connection stuck, so shutdown lets it end before closing the engine."""
    if _ticking:
        await asyncio.wait(set(_ticking), timeout=within)


async def _logged_tick(session_factory: object) -> None:
    try:
        await tick(session_factory)
    except Exception:  # noqa: BLE001 - one failed tick must not stop the schedule
        log.exception("scheduler tick failed")


def start(session_factory: object) -> AsyncIOScheduler:
    """Starts ticking on the running event loop."""

    async def safe_tick() -> None:
        # The tick runs in a task of its own: a shutdown that cancels the scheduler's job lets the
        # tick end (ticks_finished waits for it) instead of cutting it off mid-statement.
        running = asyncio.ensure_future(_logged_tick(session_factory))
        _ticking.add(running)
        running.add_done_callback(_ticking.discard)
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            log.info("scheduler stopping; the tick in progress is left to finish")

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
        # Its samples: notifications it creates (released payment holds) count here.
        sampler = OpsSampler("scheduler", runtime.sessionmaker(), runtime.settings().ops_sample_seconds)
        await sampler.start()
        log.info("scheduler running every %.0f s", INTERVAL_SECONDS)
        try:
            await asyncio.Event().wait()
        finally:
            await sampler.stop()
            scheduler.shutdown(wait=False)

    asyncio.run(main())
