"""Benchmark: an event update fanned out to N confirmed attendees.

Budget (issue 4): all notification rows committed within 1.5 s and every attendee notified
within 3 s after the job starts, with at most 20 Dramatiq messages, on SQLite and PostgreSQL.
Beside it, in the same run, the naive reference: one message and one INSERT per attendee.

    .venv/bin/python -m bench.fanout                      # SQLite, 10,000 attendees
    .venv/bin/python -m bench.fanout --postgres postgresql+asyncpg://postgres@127.0.0.1/test

Both paths run on the embedded broker (in-process worker threads, the same actors and services
as production); "notified" means the doorbell delivered the notification to a connected stream
of every attendee (10,000 local subscriptions).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from typing import Any

import dramatiq
from dramatiq import Middleware, Worker
from sqlalchemy import func, select

import jobs
from jobs import runtime
from jobs.fanout import CHUNK_SIZE
from tests.crowd import seed_crowd
from tests.services import throwaway_postgres_database
from tidings.cli import upgrade_database
from webapp.bookings.models import Booking, BookingAttendee
from webapp.collector import collect_less_often
from webapp.db import create_engine, create_sessionmaker
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService
from webapp.realtime.doorbell import LocalDoorbell, set_doorbell
from webapp.settings import load_settings

WORKER_THREADS = int(os.environ.get("BENCH_WORKER_THREADS", "2"))


class Clock(Middleware):
    """Counts messages and notes when each actor's messages start and finish."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processed = 0
        self.first_start: float | None = None
        self.last_finish = 0.0

    def before_process_message(self, broker: Any, message: Any) -> None:
        with self.lock:
            if self.first_start is None:
                self.first_start = time.monotonic()

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        with self.lock:
            self.processed += 1
            self.last_finish = time.monotonic()

    def reset(self) -> None:
        self.processed, self.first_start, self.last_finish = 0, None, 0.0


@dramatiq.actor(queue_name="bench")
async def naive_notify(event_id: int, version: int, user_id: int) -> None:
    """The reference: one message, one transaction, one INSERT per attendee."""
    async with runtime.session() as session:
        await NotificationService(session).notify(
            NewNotification(
                user_id=user_id,
                type="event_updated",
                title="Changed",
                body="naive",
                subject_kind="event",
                subject_id=event_id,
                dedupe_key=f"naive:{event_id}:{version}:{user_id}",
            )
        )
        await session.commit()


async def seed(database_url: str, attendees: int, tag: str) -> int:
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        _, event_id = await seed_crowd(session, attendees, tag)
    await engine.dispose()
    return event_id


async def measure(database_url: str, attendees: int, naive: bool) -> dict[str, float]:
    event_id = await seed(database_url, attendees, "naive" if naive else "fanout")
    settings = load_settings({"DATABASE_URL": database_url, "SECRET_KEY": "bench-" + "k" * 40, "LOG_LEVEL": "WARNING"})
    runtime.configure(settings)
    doorbell = LocalDoorbell()
    await doorbell.start()
    set_doorbell(doorbell)
    async with create_sessionmaker(create_engine(database_url))() as session:
        attendee_ids = list(
            await session.scalars(select(BookingAttendee.user_id).join(Booking).where(Booking.event_id == event_id))
        )
    subscriptions = [doorbell.hub.subscribe(uid, 4) for uid in attendee_ids]  # one open stream each
    delivered = 0
    everyone_notified = asyncio.get_running_loop().create_future()
    original = doorbell.hub.deliver

    def counting_deliver(message: dict[str, Any]) -> None:
        nonlocal delivered
        original(message)
        if message.get("type") == "new":
            delivered += 1
            if delivered >= attendees and not everyone_notified.done():
                everyone_notified.set_result(time.monotonic())

    doorbell.hub.deliver = counting_deliver  # type: ignore[method-assign]
    broker = dramatiq.get_broker()
    clock = next(m for m in broker.middleware if isinstance(m, Clock))
    clock.reset()
    worker = Worker(broker, worker_threads=WORKER_THREADS, worker_timeout=20)
    worker.start()
    try:
        if naive:
            async with runtime.session() as session:
                user_ids = list(
                    await session.scalars(
                        select(BookingAttendee.user_id).join(Booking).where(Booking.event_id == event_id)
                    )
                )
            for uid in user_ids:
                naive_notify.send(event_id, 2, uid)
        else:
            jobs.fanout.fan_out_event_change.send(event_id, 2, "updated", {"venue": ["Arena", "Stadium"]})
        notified_at = await asyncio.wait_for(everyone_notified, timeout=900)
        await asyncio.get_running_loop().run_in_executor(None, lambda: broker.join("fanout" if not naive else "bench"))
    finally:
        worker.stop()
    async with create_sessionmaker(create_engine(database_url))() as session:
        rows = await session.scalar(select(func.count(Notification.id)).where(Notification.subject_id == event_id))
    for subscription in subscriptions:
        subscription.close()
    assert rows == attendees, rows
    started = clock.first_start or 0.0
    return {
        "rows_committed_s": clock.last_finish - started,
        "all_notified_s": notified_at - started,
        "messages": float(clock.processed),
    }


async def run(database_url: str, attendees: int, with_naive: bool) -> dict[str, dict[str, float]]:
    results = {"fan-out": await measure(database_url, attendees, naive=False)}
    if with_naive:
        results["naive"] = await measure(database_url, attendees, naive=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attendees", type=int, default=10_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL; a throw-away database is made on that server")
    parser.add_argument("--no-naive", action="store_true", help="skip the (slow) naive reference")
    args = parser.parse_args()
    collect_less_often()  # as the web and jobs processes do
    broker = dramatiq.get_broker()
    broker.add_middleware(Clock(), before=next(type(m) for m in broker.middleware if type(m).__name__ == "Retries"))
    if args.postgres:
        with throwaway_postgres_database(args.postgres) as url:
            report("PostgreSQL", url, args.attendees, not args.no_naive)
    else:
        with tempfile.TemporaryDirectory() as folder:
            report(
                "SQLite", f"sqlite+aiosqlite:///{os.path.join(folder, 'bench.db')}", args.attendees, not args.no_naive
            )


def report(name: str, url: str, attendees: int, with_naive: bool) -> None:
    upgrade_database(url)
    results = asyncio.run(run(url, attendees, with_naive))
    fan = results["fan-out"]
    naive = results.get("naive", {key: float("nan") for key in fan})
    print(f"\nEvent update to {attendees:,} attendees on {name} (chunk size {CHUNK_SIZE}, 2 worker threads)")
    print(f"{'':24}{'fan-out':>12}{'naive':>12}{'naive/fan-out':>16}{'budget':>10}")
    for key, label, budget in (
        ("rows_committed_s", "rows committed (s)", "1.5"),
        ("all_notified_s", "all notified (s)", "3.0"),
        ("messages", "Dramatiq messages", "20"),
    ):
        ratio = naive[key] / fan[key] if fan[key] else float("inf")
        print(f"{label:24}{fan[key]:>12.2f}{naive[key]:>12.2f}{ratio:>15.1f}x{budget:>10}")
    within = fan["rows_committed_s"] <= 1.5 and fan["all_notified_s"] <= 3.0 and fan["messages"] <= 20
    print("within budget" if within else "OVER BUDGET")


if __name__ == "__main__":
    main()
