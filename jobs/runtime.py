"""What actors share in a worker: a database engine for the worker's event loop, and a doorbell.

In embedded mode the web process already installed its doorbell (rings are handed to the web
loop thread-safely); a separate worker process publishes through Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from webapp.db import create_engine, create_sessionmaker
from webapp.realtime.doorbell import RedisDoorbell, current_doorbell, set_doorbell
from webapp.settings import Settings, get_settings

_engines: dict[asyncio.AbstractEventLoop, tuple[AsyncEngine, async_sessionmaker[AsyncSession]]] = {}
_settings: Settings | None = None


def configure(settings: Settings) -> None:
    """Embedded mode: jobs use the web app's settings rather than reading the environment."""
    global _settings
    _settings = settings


def settings() -> Settings:
    return _settings or get_settings()


def sessionmaker() -> async_sessionmaker[AsyncSession]:
    loop = asyncio.get_running_loop()
    if loop not in _engines:
        settings = _settings or get_settings()
        engine = create_engine(settings.database_url)
        _engines[loop] = (engine, create_sessionmaker(engine))
        if current_doorbell() is None and settings.redis_url:
            set_doorbell(RedisDoorbell.from_settings(settings, listen=False))
    return _engines[loop][1]


@asynccontextmanager
async def session() -> AsyncIterator[AsyncSession]:
    async with sessionmaker()() as db:
        yield db


async def dispose() -> None:
    loop = asyncio.get_running_loop()
    if loop in _engines:
        engine, _ = _engines.pop(loop)
        await engine.dispose()
