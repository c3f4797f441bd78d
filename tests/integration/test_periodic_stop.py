"""Stopping a periodic check (the operations sampler, the delivered-live flush, the resyncs) lets a
run in progress end: cancelled halfway through a statement, a run can leave its connection inside
a transaction (on SQLite, holding the write lock), and the engine's disposal then waits on it.
A run that does not end within the grace is cancelled, so a hung database never hangs a stop."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from webapp.db import create_sessionmaker, utcnow
from webapp.ops.models import OpsSample
from webapp.realtime.periodic import PeriodicCheck


class HeldWrite(PeriodicCheck):
    """Each run writes a sample and, before its commit, waits until the test lets it go on."""

    what = "held write"

    def __init__(self, engine, hold: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
        super().__init__(interval_seconds=0.01)
        self.sessionmaker = create_sessionmaker(engine)
        self.hold = hold
        self.writing = asyncio.Event()

    async def tick(self) -> int:
        now = utcnow()
        async with self.sessionmaker() as session:
            session.add(OpsSample(process="held", kind="web", started_at=now, taken_at=now, figures={}))
            await session.flush()
            self.writing.set()
            await self.hold.wait()
            await session.commit()
        return 1


async def _samples(session) -> int:  # type: ignore[no-untyped-def]
    count = int(await session.scalar(select(func.count()).select_from(OpsSample).where(OpsSample.process == "held")))
    await session.rollback()
    return count


async def test_a_stop_lets_the_run_in_progress_commit(engine, session) -> None:
    hold = asyncio.Event()
    check = HeldWrite(engine, hold)
    await check.start()
    await asyncio.wait_for(check.writing.wait(), 10)
    stopping = asyncio.create_task(check.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done(), "the stop did not wait for the run in progress"
    hold.set()
    await asyncio.wait_for(stopping, 10)
    assert await _samples(session) == 1  # committed, and no run after the stop
    # The connection went back to the pool outside a transaction: another write goes through at once.
    now = utcnow()
    session.add(OpsSample(process="after", kind="web", started_at=now, taken_at=now, figures={}))
    await session.commit()


async def test_a_run_that_does_not_end_within_the_grace_is_cancelled(engine, monkeypatch) -> None:
    monkeypatch.setattr(PeriodicCheck, "STOP_GRACE_SECONDS", 0.3)
    check = HeldWrite(engine, asyncio.Event())  # never let go
    await check.start()
    await asyncio.wait_for(check.writing.wait(), 10)
    started = time.monotonic()
    await asyncio.wait_for(check.stop(), 10)
    assert time.monotonic() - started < 5
