"""The transactional outbox: follow-up jobs are rows in the caller's transaction.

After the transaction commits they are handed to the job queue at once (the dispatcher is
installed by `jobs`). A row is done only when its job has run: the job marks it completed in
its own transaction (`complete_with`), so done means the effect is committed. Until then the
scheduler hands it over again (`redeliver_unfinished`): the process died before the hand-over,
an in-memory or non-persistent queue lost the message, or a worker died mid-job. Jobs are
idempotent, so a second run is harmless. A rolled-back transaction enqueues nothing.

Handing over is a blocking call (Dramatiq's Redis client is synchronous): it runs on a thread
pool of its own with a timeout, never on the event loop, so a hung broker delays the rows,
never the requests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import delete, event, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from webapp import metrics
from webapp.db import utcnow
from webapp.outbox.models import OutboxMessage

log = logging.getLogger("tidings.outbox")

Dispatcher = Callable[[str, dict[str, Any]], None]
_dispatcher: Dispatcher | None = None
_handing_over: set[asyncio.Task[None]] = set()
# Rows not confirmed sent within this wait stay unmarked; the scheduler sends them again later
# (jobs are idempotent, so one sent twice is harmless).
DISPATCH_TIMEOUT_SECONDS = 10.0
# Its own threads: a hung broker then occupies these, not the default executor other code uses.
_senders = ThreadPoolExecutor(max_workers=4, thread_name_prefix="outbox-send")


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """`dispatcher(actor_name, kwargs)` sends one job; installed by the jobs package."""
    global _dispatcher
    _dispatcher = dispatcher


def enqueue_after_commit(session: AsyncSession, actor_name: str, **payload: Any) -> OutboxMessage:
    row = OutboxMessage(actor_name=actor_name, payload=payload)
    session.add(row)
    session.sync_session.info.setdefault("outbox_pending", []).append(row)
    return row


def dispatch(rows: list[tuple[int, str, dict[str, Any]]], abandoned: threading.Event | None = None) -> list[int]:
    """Sends rows to the job queue; returns the ids that were handed over. Stops early once
    `abandoned` is set (nobody waits for the answer any more)."""
    if _dispatcher is None:
        return []
    sent = []
    for outbox_id, actor_name, payload in rows:
        if abandoned is not None and abandoned.is_set():
            break
        try:
            _dispatcher(actor_name, {**payload, "outbox_id": outbox_id})
            sent.append(outbox_id)
        except Exception as exc:  # noqa: BLE001 - the scheduler retries whatever did not go out
            if isinstance(exc, RedisError):  # the Redis broker's queue (embedded mode has none)
                metrics.REDIS_ERRORS.labels("job_enqueue").inc()
            log.warning("could not enqueue outbox message %s (%s): %s", outbox_id, actor_name, exc)
    return sent


async def dispatch_off_loop(rows: list[tuple[int, str, dict[str, Any]]]) -> list[int]:
    """`dispatch` on a sender thread, waited for at most DISPATCH_TIMEOUT_SECONDS."""
    if not rows:
        return []
    abandoned = threading.Event()
    try:
        return await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(_senders, dispatch, rows, abandoned), DISPATCH_TIMEOUT_SECONDS
        )
    except TimeoutError:
        abandoned.set()  # the thread finishes the send in progress and stops
        log.warning(
            "could not enqueue outbox messages %s within %.0f s; the scheduler will retry them",
            [outbox_id for outbox_id, _, _ in rows],
            DISPATCH_TIMEOUT_SECONDS,
        )
        return []


async def mark_enqueued(engine: AsyncEngine, ids: list[int]) -> None:
    if not ids:
        return
    async with AsyncSession(engine) as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(enqueued_at=utcnow(), attempts=OutboxMessage.attempts + 1)
        )
        await session.commit()


def complete_with(session: AsyncSession, outbox_id: int) -> None:
    """Marks the row completed in the same transaction as the job's effect, when `session`
    commits. A job that ends without committing anything is marked by `mark_completed`."""
    session.sync_session.info["outbox_completes"] = outbox_id


def completes_pending(session: AsyncSession) -> bool:
    """Whether the row registered by `complete_with` still waits for a commit."""
    return "outbox_completes" in session.sync_session.info


async def mark_completed(session: AsyncSession, outbox_id: int) -> None:
    session.sync_session.info.pop("outbox_completes", None)
    await session.execute(_complete(outbox_id))


async def mark_failed(session: AsyncSession, outbox_id: int) -> None:
    """The job gave up (dead-letter queue): the row is not handed over again."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.completed_at.is_(None))
        .values(failed_at=utcnow())
    )


def _complete(outbox_id: int) -> Any:
    return (
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.completed_at.is_(None))
        .values(completed_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def redeliver_unfinished(
    session: AsyncSession,
    now: datetime,
    never_sent_after: timedelta,
    resend_after: timedelta,
    max_attempts: int,
    limit: int = 500,
) -> int:
    """Hands over again, after the caller commits, the rows whose job has not completed: never
    handed over `never_sent_after` after they were written (the process died in between,
    the broker was down), or handed over long enough ago (the queue lost the message, the
    worker died): `resend_after` after the first hand-over, twice as long after each further
    one, so that an outage of the workers costs a few hand-overs, not all of them. A row handed
    over `max_attempts` times, and not completed within its last wait, is marked failed and
    logged instead. Returns how many rows will be handed over."""
    max_attempts = max(1, max_attempts)
    overdue = [
        (OutboxMessage.attempts == attempts) & (OutboxMessage.enqueued_at <= now - resend_after * 2 ** (attempts - 1))
        for attempts in range(1, max_attempts)
    ]
    overdue.append(
        (OutboxMessage.attempts >= max_attempts)
        & (OutboxMessage.enqueued_at <= now - resend_after * 2 ** (max_attempts - 1))
    )
    rows = list(
        await session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.completed_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                (OutboxMessage.enqueued_at.is_(None) & (OutboxMessage.created_at <= now - never_sent_after))
                | or_(*overdue),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)  # attempts as committed, not as last seen
        )
    )
    exhausted = [row for row in rows if row.attempts >= max_attempts]
    for row in exhausted:
        log.error(
            "outbox message %s (%s) gave up: handed over %d times, never completed",
            row.id,
            row.actor_name,
            row.attempts,
        )
    if exhausted:
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_([row.id for row in exhausted])).values(failed_at=now)
        )
    again = [row for row in rows if row.attempts < max_attempts]
    session.sync_session.info.setdefault("outbox_pending", []).extend(again)
    return len(again)


async def purge_completed(session: AsyncSession, before: datetime) -> int:
    """Deletes rows whose job completed before `before`; failed rows stay for inspection."""
    result = await session.execute(delete(OutboxMessage).where(OutboxMessage.completed_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


@event.listens_for(Session, "before_commit")
def _complete_with_the_job(session: Session) -> None:
    outbox_id = session.info.get("outbox_completes")
    if outbox_id is not None:
        session.execute(_complete(outbox_id))


@event.listens_for(Session, "after_commit")
def _completed(session: Session) -> None:
    session.info.pop("outbox_completes", None)


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    pending: list[OutboxMessage] = session.info.pop("outbox_pending", [])
    if not pending:
        return
    rows = [(row.id, row.actor_name, row.payload) for row in pending]
    # This hook runs on the event loop: the hand-over continues in a task, off the loop.
    task = asyncio.get_running_loop().create_task(_hand_over(session.info.get("engine"), rows))
    _handing_over.add(task)
    task.add_done_callback(_handing_over.discard)
    session.info.setdefault("outbox_handovers", []).append(task)


async def handed_over(session: AsyncSession) -> None:
    """Waits until the rows the session's commits handed to the queue are recorded as handed over
    (or found not sent): the scheduler holds its turn until then (jobs/tick_turn.py)."""
    tasks: list[asyncio.Task[None]] = session.sync_session.info.pop("outbox_handovers", [])
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.warning("recording a hand-over failed (%s); the rows will be handed over again", outcome)


async def hand_overs_finished() -> None:
    """Waits for the hand-overs this event loop has in flight (tests use it to see what was sent).
    Those of other loops (an app served from another thread) are theirs to wait for."""
    loop = asyncio.get_running_loop()
    while mine := [task for task in _handing_over if task.get_loop() is loop]:
        await asyncio.gather(*mine, return_exceptions=True)


async def _hand_over(engine: AsyncEngine | None, rows: list[tuple[int, str, dict[str, Any]]]) -> None:
    sent = await dispatch_off_loop(rows)
    if sent and engine is not None:
        await mark_enqueued(engine, sent)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("outbox_pending", None)


async def oldest_pending_age(session: AsyncSession) -> float:
    """Seconds since the oldest outbox row whose job has not completed (nor failed) was written;
    0 when none waits. Reads the partial index of pending rows only."""
    oldest = await session.scalar(
        select(func.min(OutboxMessage.created_at)).where(
            OutboxMessage.completed_at.is_(None), OutboxMessage.failed_at.is_(None)
        )
    )
    return 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
