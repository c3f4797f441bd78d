"""Delivered live: when each notification was first written to a live stream of its recipient.

The streams call `DeliveredLive.record` where they count a delivery (webapp.notifications.stream,
for SSE and `/cable` alike): a dictionary update on the event loop, no database on the hot path.
`DeliveredFlush`, a periodic check of each web process (every DELIVERY_FLUSH_SECONDS), writes what
was collected in short transactions of batched UPDATEs (one per BATCH ids, so a big fan-out never
holds thousands of row locks, or SQLite's write lock, for long), and once more when the process
stops. With nothing collected it opens no transaction at all. Several tabs, reconnects or web processes
writing the same notification keep its first time (`delivered_at IS NULL` in the UPDATE).

A flush that fails (the database is away) gives its ids back for the next one; while the database
stays away the collection is bounded (MAX_PENDING), the oldest beyond it dropped, and logged.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.notifications.services import NotificationService
from webapp.realtime.periodic import PeriodicCheck

MAX_PENDING = 200_000  # ids held while the database cannot be written (about 20 MB)
BATCH = 1000  # ids per transaction
log = logging.getLogger("tidings.delivered")


class DeliveredLive:
    """This process's deliveries not yet written: notification id → Unix time of its first write."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._pending: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, notification_id: int, at: float) -> None:
        known = self._pending.get(notification_id)
        if known is None or at < known:
            self._pending[notification_id] = at

    def take(self) -> dict[int, float]:
        taken, self._pending = self._pending, {}
        return taken

    def give_back(self, batch: dict[int, float]) -> None:
        """A batch that could not be written waits for the next flush, with what came meanwhile."""
        for notification_id, at in batch.items():
            self.record(notification_id, at)
        if len(self._pending) > self.max_pending:
            keep = sorted(self._pending.items(), key=lambda item: item[1])[-self.max_pending :]
            log.warning("dropped %d delivery times that could not be written", len(self._pending) - len(keep))
            self._pending = dict(keep)


class DeliveredFlush(PeriodicCheck):
    what = "delivered-live flush"
    log = log

    def __init__(
        self, delivered: DeliveredLive, sessionmaker: async_sessionmaker[AsyncSession], interval_seconds: float
    ) -> None:
        super().__init__(interval_seconds)
        self.delivered = delivered
        self.sessionmaker = sessionmaker

    async def tick(self) -> int:
        """Writes what was collected; returns how many notifications got their delivery time."""
        taken = sorted(self.delivered.take().items(), key=lambda item: item[1])  # oldest first
        changed = 0
        for start in range(0, len(taken), BATCH):
            batch = dict(taken[start : start + BATCH])
            try:
                async with self.sessionmaker() as session:
                    changed += await NotificationService(session).mark_delivered(batch)
                    await session.commit()
            except BaseException:  # a failure, or a stop in the middle: the next flush writes them
                self.delivered.give_back(dict(taken[start:]))
                raise
        return changed

    async def stop(self) -> None:
        """Stops the periodic flush, then writes what is left."""
        await super().stop()
        await self.tick_logged()
