"""A check that each web process runs every few seconds in the background, for as long as it runs.

A failed run is logged and the next one tries again: these checks repair what a lost doorbell ring
left behind, so a database that is briefly away delays them, never stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.exc import SQLAlchemyError


class PeriodicCheck:
    what = "periodic check"
    log = logging.getLogger("tidings.periodic")
    # A stop lets the run in progress end, this long at most. Cancelled halfway through a
    # statement, a run can leave its connection inside a transaction (on SQLite: holding the write
    # lock), which the engine's disposal and every later writer then wait on.
    STOP_GRACE_SECONDS = 30.0

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def tick(self) -> int:
        raise NotImplementedError

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.STOP_GRACE_SECONDS)
        except TimeoutError:
            self.log.warning("%s still running after %.0f s; cancelled", self.what, self.STOP_GRACE_SECONDS)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_seconds)
                return  # told to stop between runs
            await self.tick_logged()

    async def tick_logged(self) -> None:
        try:
            await self.tick()
        except (SQLAlchemyError, OSError) as exc:  # the database is back on a later tick
            self.log.warning("%s failed: %s", self.what, exc)
