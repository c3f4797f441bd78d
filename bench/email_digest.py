"""Benchmark: an event update told to 10,000 attendees, then the digest window passes.

Prints the fan-out time of the notification rows without and with the off-page delivery rows
(the cost the email and push pipeline adds inside the fan-out's transactions), the scheduler
ticks that claim the digest, the number of digest emails and the time to send them all to a
local SMTP server (aiosmtpd on a real socket), through the real `send_email` job.

    .venv/bin/python bench/email_digest.py                 # SQLite
    .venv/bin/python bench/email_digest.py --postgres      # PostgreSQL at 127.0.0.1 (throwaway database)
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from jobs import runtime  # noqa: E402
from jobs.email import send_email  # noqa: E402
from jobs.scheduler import tick  # noqa: E402
from tests.crowd import seed_crowd  # noqa: E402
from tests.services import free_port, throwaway_postgres_database  # noqa: E402
from tidings.cli import upgrade_database  # noqa: E402
from webapp.bookings.models import Booking, BookingAttendee  # noqa: E402
from webapp.db import create_engine, create_sessionmaker, utcnow  # noqa: E402
from webapp.notifications import services as notification_services  # noqa: E402
from webapp.notifications.offsite_models import OffsiteDelivery  # noqa: E402
from webapp.notifications.services import NewNotification, NotificationService  # noqa: E402
from webapp.outbox.services import hand_overs_finished, set_dispatcher  # noqa: E402
from webapp.settings import load_settings  # noqa: E402

ATTENDEES = int(os.environ.get("BENCH_ATTENDEES", "10000"))
ROUNDS = 2  # of each kind; the digest then tells each attendee ROUNDS updates in one email
CHUNK = 1000  # recipients per fan-out transaction, as JOBS_FANOUT_CHUNK_SIZE
# Email jobs running at once: the embedded worker's threads on SQLite, several workers' on PostgreSQL.
SENDERS = {"sqlite": 2, "postgresql": 16}


# The SMTP server runs in a process of its own, as a real one would: in this process its thread
# would compete with the jobs for the interpreter lock and slow both down.
SMTP_SERVER = """
import sys
from aiosmtpd.controller import Controller

class Counting:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        Counting.count += 1
        return "250 OK"

controller = Controller(Counting(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes it
controller.stop()
print(Counting.count, flush=True)
"""


def start_smtp_server(port: int) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [sys.executable, "-c", SMTP_SERVER, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def stop_smtp_server(server: subprocess.Popen[str]) -> int:
    """How many messages the server accepted."""
    out, _ = server.communicate(timeout=30)
    return int(out.split()[-1])


async def fan_out(maker: Any, attendee_ids: list[int], event_id: int, tag: str) -> float:
    """The event update's notification rows, CHUNK per transaction; seconds taken."""
    started = time.perf_counter()
    for i in range(0, len(attendee_ids), CHUNK):
        async with maker() as session:
            await NotificationService(session).notify_many(
                [
                    NewNotification(
                        user_id=uid,
                        type="event_updated",
                        title="Stadium Show: new start time",
                        body="Starts: Fri 19:00 → Fri 20:00",
                        url=f"/events/{event_id}",
                        data={"event_id": event_id},
                        subject_kind="event",
                        subject_id=event_id,
                        dedupe_key=f"bench:{tag}:{event_id}:{uid}",
                    )
                    for uid in attendee_ids[i : i + CHUNK]
                ]
            )
            await session.commit()
    return time.perf_counter() - started


async def run(database_url: str) -> None:
    settings = load_settings({"DATABASE_URL": database_url, "SECRET_KEY": "bench-" + "k" * 40, "LOG_LEVEL": "WARNING"})
    engine = create_engine(database_url)
    maker = create_sessionmaker(engine)
    async with maker() as session:
        _, event_id = await seed_crowd(session, ATTENDEES, "digest")
        attendee_ids = list(
            await session.scalars(select(BookingAttendee.user_id).join(Booking).where(Booking.event_id == event_id))
        )

    async def no_pipeline(*_: Any, **__: Any) -> int:
        return 0

    # Alternating rounds, best of each: the inbox grows with every round, and a shared machine
    # is noisy; the first round of each kind pays the same growth as the other.
    real = notification_services.plan_deliveries
    inside = [0.0]

    async def timed(*args: Any, **kwargs: Any) -> int:
        started = time.perf_counter()
        try:
            return await real(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - started

    times: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(ROUNDS):
        for pipeline in (False, True):
            notification_services.plan_deliveries = timed if pipeline else no_pipeline  # type: ignore[assignment]
            times[pipeline].append(await fan_out(maker, attendee_ids, event_id, f"{round_}-{pipeline}"))
    notification_services.plan_deliveries = real
    async with maker() as session:
        rows = await session.scalar(select(func.count()).select_from(OffsiteDelivery))
    without, with_rows = min(times[False]), min(times[True])
    print(f"fan-out of {ATTENDEES:,} notifications ({CHUNK} per transaction), best of {ROUNDS}:")
    print(f"  without off-page rows: {without:.3f} s  (each: {', '.join(f'{t:.2f}' for t in times[False])})")
    print(f"  with off-page rows:    {with_rows:.3f} s  (each: {', '.join(f'{t:.2f}' for t in times[True])})")
    print(f"  added: {with_rows - without:+.3f} s for {ATTENDEES:,} rows per round ({rows:,} rows in all)")
    print(f"  time inside the pipeline step itself: {inside[0] / ROUNDS:.3f} s per round of {ATTENDEES:,}")

    port = free_port()
    server = start_smtp_server(port)
    jobs_seen: dict[int, dict[str, Any]] = {}
    set_dispatcher(
        lambda name, kwargs: jobs_seen.setdefault(kwargs["outbox_id"], kwargs) if name == "send_email" else None
    )
    mailing = replace(settings, smtp_url=f"smtp://127.0.0.1:{port}", smtp_timeout_seconds=10.0)
    runtime.configure(mailing)
    later = utcnow() + timedelta(minutes=settings.email_digest_delay_minutes + 1)
    started = time.perf_counter()
    ticks = 0
    while True:
        result = await tick(maker, now=later)
        await hand_overs_finished()
        ticks += 1
        if not result.offsite:
            break
    claimed = time.perf_counter() - started
    print(f"digest claim: {len(jobs_seen):,} email jobs written in {ticks} scheduler ticks, {claimed:.2f} s")

    job = inspect.unwrap(send_email.fn)
    senders = SENDERS[engine.dialect.name]
    gate = asyncio.Semaphore(senders)

    async def one(kwargs: dict[str, Any]) -> None:
        async with gate:
            await job(**kwargs)

    started = time.perf_counter()
    await asyncio.gather(*(one(kwargs) for kwargs in jobs_seen.values()))
    sending = time.perf_counter() - started
    count = stop_smtp_server(server)
    print(
        f"digest emails: {count:,} sent to the local SMTP server in {sending:.1f} s "
        f"({count / sending:.0f}/s, {senders} at once)"
    )
    await runtime.dispose()
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", nargs="?", const="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    if args.postgres:
        with throwaway_postgres_database(args.postgres) as url:
            upgrade_database(url)
            asyncio.run(run(url))
        return
    with tempfile.TemporaryDirectory() as directory:
        os.environ.setdefault("MAIL_DIR", directory)
        url = f"sqlite+aiosqlite:///{directory}/bench.db"
        upgrade_database(url)
        asyncio.run(run(url))


if __name__ == "__main__":
    main()
