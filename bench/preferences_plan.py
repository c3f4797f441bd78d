"""Benchmark: the channel plan of one fan-out to 10,000 people (webapp.preferences.plan).

10,000 users are seeded with a realistic mix: about a third switched one to four cells of the
grid (some of them the type being sent), one in twenty muted the event, one in five keeps quiet
hours (22:00–07:00 or 23:00–06:30) in one of four zones. Then plan_channels answers for all
10,000 at once, as a fan-out asks; its SQL statements are counted and its wall time measured over
several rounds (median, min, max).

    python bench/preferences_plan.py                  # SQLite (a temporary file)
    python bench/preferences_plan.py --postgres       # PostgreSQL at 127.0.0.1 (a throw-away database)
    python bench/preferences_plan.py --postgres postgresql+asyncpg://postgres@db/test
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/…` from the checkout

from sqlalchemy import event, insert, select, text  # noqa: E402

from tests.crowd import UNUSABLE_PASSWORD_HASH  # noqa: E402
from tests.services import throwaway_postgres_database  # noqa: E402
from tidings.cli import upgrade_database  # noqa: E402
from webapp.auth.models import User  # noqa: E402
from webapp.db import create_engine, create_sessionmaker  # noqa: E402
from webapp.events.models import Event  # noqa: E402
from webapp.preferences.models import ChannelPreference, EventMute, QuietHours  # noqa: E402
from webapp.preferences.plan import CHANNELS, DEFAULT_CHANNELS, LOCKED_CHANNELS, plan_channels  # noqa: E402

USERS = 10_000
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")
# 21:30 UTC: 22:30 in Berlin (in quiet hours), 16:30 in New York, 06:30 in Tokyo (in the last minutes).
NOW = datetime(2026, 1, 15, 21, 30, tzinfo=UTC)
TYPE = "event_updated"


async def seed(maker: Any, postgres: bool) -> tuple[list[int], int]:
    rng = random.Random(11)
    async with maker() as session:
        await session.execute(
            insert(User),
            [
                {
                    "email": f"bench{i}@example.com",
                    "name": f"Bench {i}",
                    "password_hash": UNUSABLE_PASSWORD_HASH,
                    "timezone": rng.choice(ZONES),
                }
                for i in range(USERS)
            ],
        )
        user_ids = list(await session.scalars(select(User.id).order_by(User.id)))
        starts = NOW + timedelta(days=3)
        session.add(
            concert := Event(
                organizer_id=user_ids[0],
                title="Harbour Lights",
                venue="Pier 7",
                starts_at=starts,
                ends_at=starts + timedelta(hours=3),
                timezone="Europe/Berlin",
                capacity=USERS,
                price_cents=0,
                currency="EUR",
            )
        )
        await session.flush()
        cells = [(t, c) for t in DEFAULT_CHANNELS for c in CHANNELS if c not in LOCKED_CHANNELS.get(t, frozenset())]
        switched, mutes, windows = [], [], []
        for user_id in user_ids:
            if rng.random() < 0.33:
                for type_, channel in rng.sample(cells, rng.randint(1, 4)):
                    enabled = channel not in DEFAULT_CHANNELS[type_]
                    switched.append({"user_id": user_id, "type": type_, "channel": channel, "enabled": enabled})
                if rng.random() < 0.5:  # many who change anything change the loud event updates
                    switched.append({"user_id": user_id, "type": TYPE, "channel": "email", "enabled": False})
            if rng.random() < 0.05:
                mutes.append({"user_id": user_id, "event_id": concert.id, "created_at": NOW})
            if rng.random() < 0.2:
                start, end = rng.choice(((22 * 60, 7 * 60), (23 * 60, 6 * 60 + 30)))
                windows.append({"user_id": user_id, "start_minute": start, "end_minute": end})
        unique = {(r["user_id"], r["type"], r["channel"]): r for r in switched}
        await session.execute(insert(ChannelPreference), list(unique.values()))
        await session.execute(insert(EventMute), mutes)
        await session.execute(insert(QuietHours), windows)
        await session.commit()
    if postgres:
        # A live database has planner statistics; freshly bulk-loaded tables have none yet.
        async with maker() as session:
            for table in ("users", "channel_preferences", "event_mutes", "quiet_hours"):
                await session.execute(text(f"ANALYZE {table}"))
            await session.commit()
    print(f"seeded {USERS:,} users: {len(unique):,} switched cells, {len(mutes):,} mutes, {len(windows):,} quiet hours")
    return user_ids, concert.id


async def run(url: str, rounds: int) -> tuple[int, list[float], dict[str, int]]:
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    user_ids, event_id = await seed(maker, url.startswith("postgresql"))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("BEGIN"):
            statements.append(statement)

    timings: list[float] = []
    summary: dict[str, int] = {}
    for _ in range(rounds):
        async with maker() as session:
            await session.connection()  # the fan-out's transaction is open already
            statements.clear()
            event.listen(engine.sync_engine, "before_cursor_execute", count)
            began = time.perf_counter()
            plans = await plan_channels(
                session, user_ids, TYPE, event_id=event_id, event_starts_at=NOW + timedelta(days=3), now=NOW
            )
            timings.append(time.perf_counter() - began)
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        summary = {
            "no off-page channel (muted, or all switched off)": sum(1 for p in plans.values() if not p.channels),
            "deferred (quiet hours)": sum(1 for p in plans.values() if p.deferred_until),
            "email": sum(1 for p in plans.values() if "email" in p.channels),
            "push": sum(1 for p in plans.values() if "push" in p.channels),
        }
    await engine.dispose()
    return len(statements), timings, summary


def report(name: str, queries: int, timings: list[float], summary: dict[str, int]) -> None:
    ms = sorted(t * 1000 for t in timings)
    print(
        f"{name}: plan_channels for {USERS:,} recipients: {queries} queries, "
        f"median {statistics.median(ms):.0f} ms (min {ms[0]:.0f}, max {ms[-1]:.0f}, {len(ms)} rounds)"
    )
    print("  " + ", ".join(f"{k}: {v:,}" for k, v in summary.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--postgres", nargs="?", const=DEFAULT_POSTGRES, help="a PostgreSQL URL (a throw-away database is made there)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.postgres:
        with throwaway_postgres_database(args.postgres) as url:
            upgrade_database(url)
            report("PostgreSQL", *asyncio.run(run(url, args.rounds)))
    else:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            upgrade_database(url)
            report("SQLite", *asyncio.run(run(url, args.rounds)))


if __name__ == "__main__":
    main()
