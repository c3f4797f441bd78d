"""Reading and writing the samples of the operations page (webapp.ops.models). The caller owns
the transaction: the sampler commits each write on its own, the page reads on a reader session."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.ops.figures import Sample
from webapp.ops.models import OpsSample

RETENTION = timedelta(hours=2)
# The page reads at most this many samples (the newest): 4 processes every 10 s make 1,464 in the
# 61 minutes it reads; this bound keeps a deployment with many processes or a short interval
# from reading without end (the oldest minutes then show less).
MAX_SAMPLES = 20_000


def add_sample(session: AsyncSession, sample: Sample) -> None:
    session.add(
        OpsSample(
            process=sample.process,
            kind=sample.kind,
            started_at=sample.started_at,
            taken_at=sample.taken_at,
            figures=dict(sample.figures),
        )
    )


async def prune(session: AsyncSession, now: datetime) -> int:
    """Deletes the samples older than RETENTION (on the index of taken_at); returns how many."""
    result = await session.execute(delete(OpsSample).where(OpsSample.taken_at < now - RETENTION))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def samples_since(session: AsyncSession, since: datetime) -> list[Sample]:
    return [sample for _, sample in await _rows_since(session, since)]


async def _rows_since(session: AsyncSession, since: datetime) -> list[tuple[int, Sample]]:
    rows = await session.execute(
        select(
            OpsSample.id, OpsSample.process, OpsSample.kind, OpsSample.started_at, OpsSample.taken_at, OpsSample.figures
        )
        .where(OpsSample.taken_at >= since)
        .order_by(OpsSample.taken_at.desc())
        .limit(MAX_SAMPLES)
    )
    return [(row[0], Sample(*row[1:])) for row in reversed(rows.all())]


class RecentSamples:
    """The samples a web process holds between renders of the page: each read fetches only those
    taken since shortly before the newest it holds, so a refresh reads a few rows, not an hour's.
    A sample is committed moments after it is taken; OVERLAP covers one committed late (a
    statement may take DB_STATEMENT_TIMEOUT_SECONDS at most)."""

    OVERLAP = timedelta(seconds=30)

    def __init__(self) -> None:
        self._by_id: dict[int, Sample] = {}

    async def read(self, session: AsyncSession, since: datetime) -> list[Sample]:
        """The samples taken since `since`, oldest first."""
        newest = max((s.taken_at for s in self._by_id.values()), default=None)
        start = since if newest is None else max(since, newest - self.OVERLAP)
        self._by_id.update(await _rows_since(session, start))
        kept = sorted(((key, s) for key, s in self._by_id.items() if s.taken_at >= since), key=lambda i: i[1].taken_at)
        self._by_id = dict(kept[-MAX_SAMPLES:])
        return [sample for _, sample in kept[-MAX_SAMPLES:]]
