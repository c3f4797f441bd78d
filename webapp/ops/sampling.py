"""Each process's share of the operations page: every OPS_SAMPLE_SECONDS it writes a sample of
its own cumulative counters and gauges (webapp.metrics) into `ops_samples`, in a short transaction
of its own, and deletes the samples older than two hours.

Web processes also read what belongs to the whole deployment: the outbox lag (one query on the
index of pending rows) and, through a callable the composition root hands in (webapp never
imports the jobs), the job queues' depth and dead letters. Those reads happen before the write's
transaction opens, and the broker's (a blocking client) in a thread with a timeout, so a hung
Redis costs a sample those figures, never the event loop or a held transaction.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp import metrics
from webapp.db import utcnow
from webapp.ops.figures import Sample, is_counter
from webapp.ops.store import add_sample, prune
from webapp.outbox.services import oldest_pending_age
from webapp.realtime.periodic import PeriodicCheck

log = logging.getLogger("tidings.ops")

# {"queue_depth": messages not yet done, "dead_letters": messages given up on}; {} when unknown.
BrokerBacklog = Callable[[], dict[str, int]]
BACKLOG_TIMEOUT_SECONDS = 3.0
PRUNE_EVERY = timedelta(minutes=1)
_instances = itertools.count(1)


def _total(metric: Any) -> float:
    return float(sum(s.value for family in metric.collect() for s in family.samples if s.name.endswith("_total")))


def process_figures() -> dict[str, float]:
    """This process's counters and gauges, as the sample keys of webapp.ops.figures."""
    figures: dict[str, float] = {}
    for family in metrics.CONNECTIONS_OPEN.collect():
        for s in family.samples:
            figures[f"open.{s.labels['transport']}"] = s.value
    figures["created"] = _total(metrics.NOTIFICATIONS_CREATED)
    figures["live"] = _total(metrics.LIVE_RECIPIENTS)
    figures["delivered"] = _total(metrics.NOTIFICATIONS_DELIVERED)
    for family in metrics.DELIVERY_SECONDS.collect():
        for s in family.samples:
            if s.name.endswith("_bucket"):
                le = s.labels["le"]
                figures[f"le.{le if le == '+Inf' else format(float(le), 'g')}"] = s.value
    return figures


def process_name(kind: str) -> str:
    """kind:host:pid, and a number after a second sampler in one process (tests run several apps)."""
    instance = next(_instances)
    name = f"{kind}:{socket.gethostname()}:{os.getpid()}"
    return (name if instance == 1 else f"{name}/{instance}")[:120]


class OpsSampler(PeriodicCheck):
    what = "operations sample"

    def __init__(
        self,
        kind: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        interval_seconds: float,
        *,
        reader_sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        broker_backlog: BrokerBacklog | None = None,
    ) -> None:
        """With `reader_sessionmaker` (web processes), samples carry the deployment-wide figures."""
        super().__init__(interval_seconds)
        self.kind = kind
        self.process = process_name(kind)
        self.started_at = utcnow()
        # Samples count from this start: whatever the process counted before is not in them
        # (nothing, in a real process; earlier apps' counts, in a test process running several).
        self._zero = {key: value for key, value in process_figures().items() if is_counter(key)}
        self.sessionmaker = sessionmaker
        self.reader_sessionmaker = reader_sessionmaker
        self.broker_backlog = broker_backlog
        self._pruned_at: datetime | None = None

    async def tick(self) -> int:
        figures = {key: value - self._zero.get(key, 0.0) for key, value in process_figures().items()}
        if self.reader_sessionmaker is not None:
            figures.update(await self._deployment_figures(self.reader_sessionmaker))
        now = utcnow()
        async with self.sessionmaker() as session:
            add_sample(session, Sample(self.process, self.kind, self.started_at, now, figures))
            await session.commit()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            # Apart from the write: processes prune the same rows, and a conflict there must not
            # cost the sample.
            self._pruned_at = now
            async with self.sessionmaker() as session:
                await prune(session, now)
                await session.commit()
        return 1

    async def _deployment_figures(self, reader: async_sessionmaker[AsyncSession]) -> dict[str, float]:
        async with reader() as session:
            figures: dict[str, float] = {"outbox_lag": await oldest_pending_age(session)}
        if self.broker_backlog is not None:
            try:
                backlog = await asyncio.wait_for(asyncio.to_thread(self.broker_backlog), BACKLOG_TIMEOUT_SECONDS)
            except TimeoutError:
                log.warning("the job queues did not answer within %.0f s", BACKLOG_TIMEOUT_SECONDS)
                backlog = {}
            figures.update({key: float(value) for key, value in backlog.items()})
        return figures
