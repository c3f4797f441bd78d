"""The transactional outbox: follow-up jobs are rows in the caller's transaction.

After the transaction commits they are handed to the job queue at once (the dispatcher is
installed by `jobs`); if the process dies before that, or the broker cannot be reached, the
scheduler finds the rows still unmarked and enqueues them. A rolled-back transaction enqueues
nothing. Only rows the broker took are marked.

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
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

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


async def enqueue_stranded(session: AsyncSession, older_than: timedelta, limit: int = 500) -> int:
    """Re-enqueues rows committed but never marked enqueued (a crash between commit and
    enqueue). Called by the scheduler."""
    cutoff = utcnow() - older_than
    rows = list(
        await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.enqueued_at.is_(None), OutboxMessage.created_at <= cutoff)
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    sent = await dispatch_off_loop([(row.id, row.actor_name, row.payload) for row in rows])
    if sent:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(sent))
            .values(enqueued_at=utcnow(), attempts=OutboxMessage.attempts + 1)
        )
    return len(sent)


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


async def _hand_over(engine: AsyncEngine | None, rows: list[tuple[int, str, dict[str, Any]]]) -> None:
    sent = await dispatch_off_loop(rows)
    if sent and engine is not None:
        await mark_enqueued(engine, sent)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("outbox_pending", None)
