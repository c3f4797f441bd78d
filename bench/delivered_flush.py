"""Benchmark: one flush of "delivered live" times for 10,000 notifications (webapp.notifications.delivered).

10,000 notifications of 1,000 users (a fan-out's worth) are written, their deliveries recorded over
one second (as the streams would), and one DeliveredFlush tick writes them: ten transactions of
1,000 ids. Repeated on fresh rows (each round adds 10,000); the median and the spread are printed.

    .venv/bin/python -m bench.delivered_flush                      # SQLite
    .venv/bin/python -m bench.delivered_flush --postgres postgresql+asyncpg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from sqlalchemy import insert, select

from tests.crowd import UNUSABLE_PASSWORD_HASH
from tests.services import throwaway_postgres_database
from tidings.cli import upgrade_database
from webapp.auth.models import User
from webapp.db import create_engine, create_sessionmaker, utcnow
from webapp.notifications.delivered import DeliveredFlush, DeliveredLive
from webapp.notifications.models import Notification

COUNT = 10_000
USERS = 1_000


async def run(url: str, rounds: int) -> list[float]:
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    async with maker() as session:
        people = [
            {"email": f"bench{i}@example.com", "name": "Bench", "password_hash": UNUSABLE_PASSWORD_HASH}
            for i in range(USERS)
        ]
        await session.execute(insert(User), people)
        await session.commit()
        user_ids = list(await session.scalars(select(User.id).order_by(User.id)))
    timings = []
    for round_ in range(rounds):
        now = utcnow()
        async with maker() as session:
            rows = [
                {
                    "user_id": user_ids[i % USERS],
                    "seq": round_ * COUNT + i + 1,
                    "type": "general",
                    "title": "Doors open at seven",
                    "body": "",
                    "url": "/",
                    "data": {},
                    "dedupe_key": f"bench:{round_}:{i}",
                    "created_at": now,
                }
                for i in range(COUNT)
            ]
            await session.execute(insert(Notification), rows)
            await session.commit()
            ids = list(await session.scalars(select(Notification.id).where(Notification.delivered_at.is_(None))))
        live = DeliveredLive()
        started = time.time()
        for offset, notification_id in enumerate(ids):
            live.record(notification_id, started + offset / COUNT)
        began = time.perf_counter()
        written = await DeliveredFlush(live, maker, interval_seconds=60).tick()
        timings.append(time.perf_counter() - began)
        assert written == COUNT, written
    await engine.dispose()
    return timings


def report(name: str, timings: list[float]) -> None:
    ms = sorted(t * 1000 for t in timings)
    median, low, high = statistics.median(ms), ms[0], ms[-1]
    print(f"{name}: flush of {COUNT:,} ids: median {median:.0f} ms (min {low:.0f}, max {high:.0f}, {len(ms)} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL; a throw-away database is made on its server")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.postgres:
        with throwaway_postgres_database(args.postgres) as url:
            upgrade_database(url)
            report("PostgreSQL", asyncio.run(run(url, args.rounds)))
    else:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            upgrade_database(url)
            report("SQLite", asyncio.run(run(url, args.rounds)))


if __name__ == "__main__":
    main()
