"""Scheduler ticks take turns across processes, so running more than one scheduler does no work
twice.

Each claim of a tick is atomic on its own (SKIP LOCKED, conditional updates), but handing an
unfinished outbox row over again is not a claim: it is recorded (`enqueued_at`) only after the
hand-over, after the commit. A second scheduler ticking in between would hand the same rows over
again. So a tick runs only while it holds the deployment's tick lock, and holds it until its
hand-overs are recorded:

- PostgreSQL: a session-level advisory lock on a connection of its own. Advisory locks belong to
  one database, so the deployments (and test runs) of one server never share a turn; the server
  drops it with the session, so a scheduler that dies mid-tick gives its turn back.
- SQLite: an exclusive `flock` on a file beside the database file (every process that uses a
  SQLite file runs on its machine); the kernel drops it with the process.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("tidings.scheduler")

# One advisory lock key for the scheduler's tick, the same in every process of a deployment.
TICK_LOCK_KEY = int.from_bytes(hashlib.sha256(b"tidings scheduler tick").digest()[:8], "big", signed=True)
POLL_SECONDS = 0.05


async def _poll(attempt: Callable[[], Awaitable[bool]], wait_seconds: float) -> bool:
    """Tries `attempt` until it succeeds or `wait_seconds` have passed."""
    deadline = time.monotonic() + wait_seconds
    while not await attempt():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True


@asynccontextmanager
async def tick_turn(engine: AsyncEngine, wait_seconds: float) -> AsyncIterator[bool]:
    """Holds the deployment's tick lock while the block runs; yields False when another scheduler
    kept it for `wait_seconds` (the caller then skips its tick)."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            async with _advisory_lock(await conn.execution_options(isolation_level="AUTOCOMMIT"), wait_seconds) as got:
                yield got
        return
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        yield True  # one process owns such a database
        return
    async with _file_lock(f"{path}.scheduler-lock", wait_seconds) as got:
        yield got


@asynccontextmanager
async def _advisory_lock(conn: AsyncConnection, wait_seconds: float) -> AsyncIterator[bool]:
    async def attempt() -> bool:
        return bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": TICK_LOCK_KEY}))

    got = await _poll(attempt, wait_seconds)
    try:
        yield got
    finally:
        if got:
            try:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": TICK_LOCK_KEY})
            except Exception:  # noqa: BLE001 - a connection that may still hold it must not go back to the pool
                log.warning("could not give the scheduler's turn back; closing its connection")
                await conn.invalidate()


@asynccontextmanager
async def _file_lock(path: str, wait_seconds: float) -> AsyncIterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    async def attempt() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        got = await _poll(attempt, wait_seconds)
        yield got
    finally:
        os.close(fd)  # gives the lock back
