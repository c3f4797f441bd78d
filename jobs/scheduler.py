"""The scheduler: one per deployment is enough (`tidings scheduler`; inside the web process in
embedded mode). Every tick it claims due reminders and review requests, writing their jobs as
outbox rows in the claim's own transaction (a send that fails is retried, never lost), releases
the seats of bookings left unpaid past their payment hold, hands over again the outbox rows whose
job has not completed, and purges old rows (completed outbox rows here, sent reminders and expired
notifications in jobs/retention.py). Each step is its own transaction, committed here, and its
hand-overs to the queue are recorded before the next step.

More schedulers are safe: a tick runs only in its turn (jobs/tick_turn.py), so two of them never
tick at once and none does work another has done. Each tick counts itself, its duration and what
it relayed (webapp.metrics); `tidings scheduler` serves those on SCHEDULER_METRICS_PORT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import start_http_server
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from jobs import retention, runtime
from jobs.fanout import fan_out_review_requests
from jobs.reminders import send_event_reminder
from jobs.tick_turn import tick_turn
from webapp import metrics
from webapp.bookings.services import BookingService
from webapp.db import utcnow
from webapp.events.models import Event
from webapp.notifications.offsite import claim_due
from webapp.notifications.services import NotificationService
from webapp.ops.sampling import OpsSampler
from webapp.outbox.services import enqueue_after_commit, handed_over, purge_completed, redeliver_unfinished
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
# A tick waits this long for another scheduler's tick to end, then skips (a tick normally takes
# well under a second; one that takes this long is worth a look, not a queue of waiting ticks).
TURN_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class TickResult:
    reminders: int
    review_events: int
    outbox: int
    purged_outbox: int = 0
    purged_reminders: int = 0
    purged_notifications: int = 0
    released: int = 0
    expiries_told: int = 0  # users whose tabs were told a lower count because items expired
    offsite: int = 0  # push and email jobs written for due off-page deliveries
    skipped: bool = False  # another scheduler kept the turn


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


async def tick(
    session_factory: object, now: datetime | None = None, turn_wait_seconds: float = TURN_WAIT_SECONDS
) -> TickResult:
    """One pass in this scheduler's turn, one transaction per step. `now` is injectable so tests
    can move time instead of sleeping."""
    try:
        async with tick_turn(_engine_of(session_factory), turn_wait_seconds) as mine:
            if not mine:
                log.warning("another scheduler kept its turn for %.0f s; this tick is skipped", turn_wait_seconds)
                metrics.SCHEDULER_TICKS.labels("skipped").inc()
                return TickResult(0, 0, 0, skipped=True)
            started = time.monotonic()
            result = await _tick(session_factory, now or utcnow())
    except Exception:
        metrics.SCHEDULER_TICKS.labels("failed").inc()
        raise
    metrics.SCHEDULER_TICK_SECONDS.observe(time.monotonic() - started)
    metrics.SCHEDULER_TICKS.labels("completed").inc()
    for kind, count in (
        ("reminder", result.reminders),
        ("review_fanout", result.review_events),
        ("released_booking", result.released),
        ("outbox_redelivery", result.outbox),
    ):
        metrics.SCHEDULER_RELAYED.labels(kind).inc(count)
    for table, count in (
        ("outbox", result.purged_outbox),
        ("reminders", result.purged_reminders),
        ("notifications", result.purged_notifications),
    ):
        metrics.SCHEDULER_PURGED.labels(table).inc(count)
    return result


def _engine_of(session_factory: object) -> AsyncEngine:
    bind = getattr(session_factory, "kw", {}).get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the scheduler needs a sessionmaker bound to an engine")
    return bind


async def _tick(session_factory: object, now: datetime) -> TickResult:
    async with session_factory() as session:  # type: ignore[operator]
        reminder_ids = await ReminderService(session).claim_due(now)
        for reminder_id in reminder_ids:
            enqueue_after_commit(session, send_event_reminder.actor_name, reminder_id=reminder_id)
        await session.commit()
        await handed_over(session)
    async with session_factory() as session:  # type: ignore[operator]
        offsite = await claim_due(session, now)  # one push or email job per user and channel
        await session.commit()
        await handed_over(session)
    async with session_factory() as session:  # type: ignore[operator]
        event_ids = await claim_review_requests(session, now)
        for event_id in event_ids:
            enqueue_after_commit(session, fan_out_review_requests.actor_name, event_id=event_id)
        await session.commit()
        await handed_over(session)
    hold = timedelta(minutes=runtime.settings().payment_hold_minutes)
    async with session_factory() as session:  # type: ignore[operator]
        released = await BookingService(session).release_unpaid(now - hold, now)
        await BookingService(session).forget_request_keys(now)
        await session.commit()  # the notifications' outbox rows go out after this commit
        await handed_over(session)
    async with session_factory() as session:  # type: ignore[operator]
        again = await redeliver_unfinished(session, now, OUTBOX_GRACE, OUTBOX_REDELIVER, OUTBOX_MAX_ATTEMPTS)
        purged_outbox = await purge_completed(session, now - OUTBOX_RETENTION)
        await session.commit()
        await handed_over(session)  # recorded before the turn passes: nobody hands them over again
    async with session_factory() as session:  # type: ignore[operator]
        told = await NotificationService(session).announce_expired(now)
        await session.commit()  # the counts ring after this commit
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
        expiries_told=len(told),
        offsite=offsite,
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


def serve_metrics(port: int | None, host: str) -> None:
    """`tidings scheduler` serves this process's metrics on SCHEDULER_METRICS_PORT, when set."""
    if not port:
        return
    try:
        start_http_server(port, addr=host, registry=metrics.REGISTRY)
    except OSError as exc:  # the schedule matters more than its numbers: say so and carry on
        log.error("scheduler metrics: cannot listen on %s:%s (%s)", host, port, exc)
        return
    log.info("scheduler metrics on http://%s:%s/metrics", host, port)


def run_forever() -> None:
    """`tidings scheduler`: the scaled deployment's scheduler process."""
    from jobs import runtime

    async def main() -> None:
        settings = runtime.settings()
        serve_metrics(settings.scheduler_metrics_port, settings.host)
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
