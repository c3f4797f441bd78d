"""Benchmark: what the operations page costs.

- one sample write: a web process's sampler tick (its counters and gauges, the outbox lag query,
  one INSERT committed on its own), and the prune each process runs once a minute;
- the page with two hours of samples from four processes taken every 10 s (2,880 rows): reading
  the last 61 minutes (all of them on a process's first render, then only the new ones, as the
  page does), aggregating them, rendering the figures fragment (what the stream sends).

    .venv/bin/python -m bench.ops_page                    # SQLite
    .venv/bin/python -m bench.ops_page --postgres postgresql+asyncpg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.services import throwaway_postgres_database
from tidings.cli import upgrade_database
from webapp.db import create_engine, create_sessionmaker, utcnow
from webapp.metrics import TRANSPORTS
from webapp.ops.figures import BUCKETS, aggregate, read_since
from webapp.ops.models import OpsSample
from webapp.ops.sampling import OpsSampler
from webapp.ops.store import RecentSamples, prune, samples_since
from webapp.ops.views import ops_view
from webapp.rendering import configure_environment
from webapp.settings import PROJECT_ROOT

PROCESSES = 4
INTERVAL = 10.0
HOURS = 2


def history(now: datetime, processes: int = PROCESSES, interval: float = INTERVAL) -> list[dict[str, Any]]:
    """Samples of `processes` web processes over the last HOURS: a steady load with a burst."""
    rows = []
    started = now - timedelta(hours=HOURS, minutes=5)
    steps = int(HOURS * 3600 / interval)
    for p in range(processes):
        created = live = 0.0
        buckets = dict.fromkeys(BUCKETS, 0.0)
        for step in range(steps):
            burst = 40 if step % 90 < 6 else 0
            created += 5 + burst + p
            live += 4 + burst
            for i, le in enumerate(BUCKETS):
                buckets[le] += (4 + burst) * min(1.0, 0.55 + 0.1 * i)
            figures: dict[str, float] = {f"open.{t}": 50 + p * 10 + (step % 30) for t in TRANSPORTS}
            figures.update(created=created, live=live, delivered=live, outbox_lag=(step % 12) * 0.5)
            figures.update(queue_depth=burst // 4, dead_letters=3)
            figures.update({f"le.{le}": count for le, count in buckets.items()})
            rows.append(
                {
                    "process": f"web:bench-{p}:100{p}",
                    "kind": "web",
                    "started_at": started,
                    "taken_at": now - timedelta(seconds=(steps - step) * interval),
                    "figures": figures,
                }
            )
    return rows


CPU: dict[str, float] = {}  # CPU ms per run of each measurement: on a busy machine wall time waits for a core


async def timed(what: Callable[[], Awaitable[Any]], runs: int, name: str = "") -> list[float]:
    times = []
    cpu = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        await what()
        times.append((time.perf_counter() - start) * 1000)
    CPU[name] = (time.process_time() - cpu) * 1000 / runs
    return times


def report(name: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    cpu = f"   CPU {CPU[name]:6.2f} ms" if name in CPU else ""
    print(f"{name:<46} median {statistics.median(times):7.2f} ms   p95 {p95:7.2f} ms{cpu}   ({len(times)} runs)")


async def run(url: str) -> None:
    engine = create_engine(url)
    reader = create_engine(url, readers_only=True) if url.startswith("sqlite") else engine
    writer_sessions, reader_sessions = create_sessionmaker(engine), create_sessionmaker(reader)
    now = utcnow()
    rows = history(now)
    async with writer_sessions() as session:
        await session.execute(insert(OpsSample), rows)
        await session.commit()
    print(f"{url.split(':')[0]}: {len(rows):,} samples from {PROCESSES} processes over {HOURS} h")

    sampler = OpsSampler("web", writer_sessions, INTERVAL, reader_sessionmaker=reader_sessions)
    sampler._pruned_at = utcnow() + timedelta(days=1)  # the write alone; the prune is measured below
    name = "sample write (counters, outbox lag, INSERT)"
    report(name, await timed(sampler.tick, 200, name))

    async def prune_a_minute(session_factory: async_sessionmaker[AsyncSession] = writer_sessions) -> None:
        # A minute's worth of expired samples (4 processes × 6), as each process finds once a minute.
        async with session_factory() as session:
            await prune(session, prune_a_minute.at)  # type: ignore[attr-defined]
            await session.commit()
        prune_a_minute.at += timedelta(minutes=1)  # type: ignore[attr-defined]

    prune_a_minute.at = now  # type: ignore[attr-defined]
    name = "prune (one minute of expired samples)"
    report(name, await timed(prune_a_minute, 20, name))

    environment = Environment(loader=FileSystemLoader(PROJECT_ROOT / "templates"), autoescape=select_autoescape())
    configure_environment(environment)
    fragment = environment.get_template("_ops_figures.html")
    parts: dict[str, list[float]] = {"read": [], "aggregate": [], "render": []}
    recent = RecentSamples()

    async def first_read() -> None:
        async with reader_sessions() as session:
            await samples_since(session, read_since(utcnow()))

    name = "page: first read of the hour's samples"
    report(name, await timed(first_read, 10, name))

    async def page() -> None:
        moment = utcnow()
        start = time.perf_counter()
        async with reader_sessions() as session:
            samples = await recent.read(session, read_since(moment))
        read = time.perf_counter()
        view = ops_view(aggregate(samples, moment, INTERVAL), INTERVAL)
        aggregated = time.perf_counter()
        fragment.render(ops=view)
        parts["read"].append((read - start) * 1000)
        parts["aggregate"].append((aggregated - read) * 1000)
        parts["render"].append((time.perf_counter() - aggregated) * 1000)

    await page()  # the first read, measured above
    for name in parts:
        parts[name].clear()
    name = "page: read the new samples, aggregate, render"
    report(name, await timed(page, 30, name))
    for name, times in parts.items():
        report(f"  of which {name}", times)
    async with reader_sessions() as session:
        print(f"samples read per page: {len(await samples_since(session, read_since(utcnow()))):,}")
    await engine.dispose()
    await reader.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", help="a PostgreSQL URL; a throwaway database is made on its server")
    args = parser.parse_args()
    with throwaway_postgres_database(args.postgres) if args.postgres else nullcontext(None) as pg_url:
        with tempfile.TemporaryDirectory() as folder:
            url = pg_url or f"sqlite+aiosqlite:///{Path(folder) / 'ops.db'}"
            upgrade_database(url)
            asyncio.run(run(url))


if __name__ == "__main__":
    main()
