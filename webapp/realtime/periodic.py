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

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> int:
        raise NotImplementedError

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            await self.tick_logged()

    async def tick_logged(self) -> None:
        try:
            await self.tick()
        except (SQLAlchemyError, OSError) as exc:  # the database is back on a later tick
            self.log.warning("%s failed: %s", self.what, exc)
