"""What actors share in a worker: a database engine for the worker's event loop, a doorbell, and
the job's unit of work, which also finishes the job's outbox row.

In embedded mode the web process already installed its doorbell (rings are handed to the web
loop thread-safely); a separate worker process publishes through Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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


async def dispose() -> None:
    loop = asyncio.get_running_loop()
    if loop in _engines:
        engine, _ = _engines.pop(loop)
        await engine.dispose()
