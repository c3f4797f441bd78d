"""What actors share in a worker: a database engine for the worker's event loop, a doorbell, and
the job's unit of work, which also finishes the job's outbox row.

In embedded mode the web process already installed its doorbell (rings are handed to the web
loop thread-safely); a separate worker process publishes through Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from webapp.bookings.payment_gateway import PaymentGateway, TestPaymentGateway
from webapp.db import create_engine, create_sessionmaker
from webapp.outbox import services as outbox
from webapp.realtime.doorbell import RedisDoorbell, current_doorbell, set_doorbell
from webapp.settings import Settings, get_settings

_engines: dict[asyncio.AbstractEventLoop, tuple[AsyncEngine, async_sessionmaker[AsyncSession]]] = {}
_settings: Settings | None = None
_payment_gateway: PaymentGateway | None = None


def configure(settings: Settings, payment_gateway: PaymentGateway | None = None) -> None:
    """Embedded mode: jobs use the web app's settings (and its payment gateway) rather than
    reading the environment."""
    global _settings, _payment_gateway
    _settings = settings
    _payment_gateway = payment_gateway


def payment_gateway() -> PaymentGateway:
    """The gateway refunds go through: the web app's in embedded mode, else this process's own."""
    global _payment_gateway
    if _payment_gateway is None:
        _payment_gateway = TestPaymentGateway()
    return _payment_gateway


def settings() -> Settings:
    return _settings or get_settings()


def sessionmaker() -> async_sessionmaker[AsyncSession]:
    loop = asyncio.get_running_loop()
    if loop not in _engines:
        settings = _settings or get_settings()
        engine = create_engine(settings.database_url, timeouts=settings.database_timeouts)
        _engines[loop] = (engine, create_sessionmaker(engine))
        if current_doorbell() is None and settings.redis_url:
            set_doorbell(RedisDoorbell.from_settings(settings, listen=False))
    return _engines[loop][1]


@asynccontextmanager
async def session(outbox_id: int | None = None) -> AsyncIterator[AsyncSession]:
    """The job's unit of work. With the `outbox_id` every outbox-borne job receives, the row is
    marked completed by the job's own commit (done means its effect is committed); a job that
    ends without committing (nothing to do) marks it on the way out. A job that raises leaves
    it pending, for Dramatiq's retries and the scheduler."""
    async with sessionmaker()() as db:
        if outbox_id is not None:
            outbox.complete_with(db, outbox_id)
        yield db
        if outbox_id is not None and outbox.completes_pending(db):
            await db.rollback()  # whatever the job left uncommitted was not meant to be kept
            await outbox.mark_completed(db, outbox_id)
            await db.commit()


async def mark_failed(outbox_id: int) -> None:
    async with session() as db:
        await outbox.mark_failed(db, outbox_id)
        await db.commit()


# What a job's commit started on the loop (the hand-over of its outbox rows, bounded by the
# hand-over's own timeout) gets this long to end once the jobs have; then it is cancelled.
LOOP_TASKS_GRACE_SECONDS = outbox.DISPATCH_TIMEOUT_SECONDS + 5


async def finish_loop_tasks(grace_seconds: float = LOOP_TASKS_GRACE_SECONDS) -> None:
    """Lets the tasks left on this loop end (cancelling those still running after the grace, so
    that each leaves its transaction through its own rollback), then closes the engine: as
    asyncio.run does before it closes a loop."""
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current]
    if left:
        _, running = await asyncio.wait(left, timeout=grace_seconds)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    await dispose()


async def dispose() -> None:
    loop = asyncio.get_running_loop()
    if loop in _engines:
        engine, _ = _engines.pop(loop)
        await engine.dispose()


class DisposeAtShutdown(Middleware):
    """Once the worker threads have finished their jobs, and before Dramatiq's AsyncIO middleware
    stops the jobs' event loop (listed after it: `after_` hooks run in reverse order), lets what
    the jobs left running there end and closes their engine. A task still in its transaction when
    the loop stops (a job, or the hand-over a job's commit started) would leave its connection,
    and on SQLite the write lock, held for as long as the process lives."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(finish_loop_tasks())
