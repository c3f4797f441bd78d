"""Done means done: an outbox job is finished only once it has run, so a queue that loses its
messages, or a worker that dies mid-job, delays work but never loses it (nor doubles it).

(a) Embedded mode: the in-process queue holds the jobs when the web process is killed (-9); the
    next start runs every one of them. (b) Scaled mode on a Redis without persistence: Redis
    restarts with jobs queued and no worker running; the worker and scheduler started afterwards
    run every one. (c) Scaled mode with default settings: a worker SIGKILLed mid-job has its work
    redone by another worker within a minute.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import book, create_event
from tests.conftest import TEST_SECRET
from tests.crowd import seed_crowd
from tests.reliability.conftest import Account, announce, register, register_admin, server_env
from tests.reliability.test_redis import RedisProcess
from tests.services import REDIS_URL, LiveScheduler, LiveServer, LiveWorker, free_port, scaled_env
from webapp.db import utcnow

START_WITHIN = 120  # seconds; starting a process takes long on a busy machine (imports)
FAST_SWEEP = {"SCHEDULER_INTERVAL_SECONDS": "1", "OUTBOX_GRACE_SECONDS": "1", "OUTBOX_REDELIVER_SECONDS": "2"}


async def scalar_rows(session: AsyncSession, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read. On SQLite it runs outside any transaction of this process, so watching
    never holds the write lock the servers and workers need."""
    url = session.bind.url
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database, isolation_level=None) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
    rows = [tuple(row) for row in (await session.execute(text(sql))).all()]
    await session.rollback()
    return rows


async def until(check: Callable[[], Awaitable[Any]], within: float, what: str) -> float:
    """Waits for a condition; returns how long it took."""
    started = time.monotonic()
    while not (result := await check()):
        assert time.monotonic() - started < within, f"{what}: not within {within} s (last: {result!r})"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def outbox_counts(session: AsyncSession) -> tuple[int, int, int]:
    """(rows, rows handed to the queue, rows completed)."""
    [(total, handed, completed)] = await scalar_rows(
        session, "SELECT count(id), count(enqueued_at), count(completed_at) FROM outbox_messages"
    )
    return int(total), int(handed), int(completed)


@dataclass
class Work:
    """An announcement to everyone and three booking confirmations: outbox jobs and fan-out."""

    accounts: list[Account]
    guests: list[Account]
    title: str


async def make_work(http: httpx.AsyncClient, session: AsyncSession) -> Work:
    admin = await register_admin(http, session)
    organizer = await register(http)
    event = await create_event(http, organizer.token, price_cents=0, title="Quay Dance")
    guests = [await register(http) for _ in range(3)]
    for guest in guests:
        response = await book(http, guest.token, event["id"])
        assert response.status_code == 201, response.text
    title = f"Notice {uuid.uuid4().hex[:8]}"
    await announce(http, admin, title)
    return Work([admin, organizer, *guests], guests, title)


async def assert_exactly_once(session: AsyncSession, work: Work, within: float) -> float:
    """Every notification of the work arrives, each exactly once; returns the wait."""
    ids = ",".join(str(a.id) for a in work.accounts)
    guest_ids = ",".join(str(g.id) for g in work.guests)
    announced = (
        f"SELECT user_id, count(id) FROM notifications WHERE type = 'general' AND title = '{work.title}' "
        f"AND user_id IN ({ids}) GROUP BY user_id"
    )
    confirmed = (
        "SELECT user_id, count(id) FROM notifications WHERE type = 'booking_confirmed' "
        f"AND user_id IN ({guest_ids}) GROUP BY user_id"
    )

    async def arrived() -> bool:
        return len(await scalar_rows(session, announced)) == len(work.accounts) and len(
            await scalar_rows(session, confirmed)
        ) == len(work.guests)

    waited = await until(arrived, within, "every notification arrives")

    async def all_completed() -> bool:
        total, _, completed = await outbox_counts(session)
        return total == completed

    await until(all_completed, within, "every outbox job completes")  # nothing left that could add a copy
    assert sorted(await scalar_rows(session, announced)) == [
        (a.id, 1) for a in sorted(work.accounts, key=lambda a: a.id)
    ]
    assert sorted(await scalar_rows(session, confirmed)) == [(g.id, 1) for g in sorted(work.guests, key=lambda g: g.id)]
    return waited


async def all_handed_over(session: AsyncSession, expected_at_least: int) -> bool:
    total, handed, completed = await outbox_counts(session)
    assert completed == 0, "a job ran although no worker could run it"
    return total >= expected_at_least and handed == total


async def test_embedded_jobs_queued_when_the_process_is_killed_run_exactly_once_after_restart(
    database_url, session, tmp_path
):
    # The first process hands jobs to its in-memory queue but has no worker thread to run them.
    first = LiveServer(
        server_env(database_url, EMBEDDED_WORKER_THREADS="0", **FAST_SWEEP), tmp_path / "first.log", START_WITHIN
    )
    try:
        first.start()
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            work = await make_work(http, session)
        # Four jobs (three confirmations, one announcement), all handed to the in-memory queue.
        await until(lambda: all_handed_over(session, 4), 15, "the jobs are handed to the queue")
        assert first.process is not None
        first.process.kill()  # kill -9: the in-memory queue is gone
        first.process.wait(timeout=10)
    finally:
        first.stop()
    second = LiveServer(server_env(database_url, **FAST_SWEEP), tmp_path / "second.log", START_WITHIN)
    started = time.monotonic()
    second.start()
    try:
        waited = await assert_exactly_once(session, work, within=90)
        print(
            f"\nembedded restart: every notification exactly once {time.monotonic() - started:.1f} s after the restart"
        )
        assert waited >= 0
    finally:
        second.stop()
    assert "Traceback" not in second.log_path.read_text(errors="replace")


async def test_jobs_lost_by_a_redis_restart_without_persistence_run_exactly_once(database_url, session, tmp_path):
    redis = RedisProcess(free_port(), tmp_path / "redis.log")
    redis.start()
    env = {**scaled_env(database_url, TEST_SECRET), "REDIS_URL": redis.url, **FAST_SWEEP}
    web = LiveServer(env, tmp_path / "web.log", START_WITHIN)
    worker = LiveWorker(env, tmp_path / "worker.log", threads=2)
    scheduler = LiveScheduler(env, tmp_path / "scheduler.log")
    try:
        web.start()
        async with httpx.AsyncClient(base_url=web.url, timeout=30) as http:
            work = await make_work(http, session)
        await until(lambda: all_handed_over(session, 4), 15, "the jobs are handed to Redis")
        web.stop()
        redis.stop()  # a crash: nothing was saved, the queued messages are gone
        redis.start()
        started = time.monotonic()
        worker.start()
        scheduler.start()
        await assert_exactly_once(session, work, within=90)
        print(f"\nredis restart: every notification exactly once {time.monotonic() - started:.1f} s after the restart")
    finally:
        scheduler.stop()
        worker.stop()
        web.stop()
        redis.stop()
    for process in (worker, scheduler):
        assert "Traceback" not in process.log_path.read_text(errors="replace"), process.log_path


# Enough 500-person chunks that the first worker still holds some when the test looks (every
# 0.1 s): since a chunk's seat lookup takes 5 ms on SQLite, not 1 s, 2,000 were done before that.
ATTENDEES = 8000


async def workers(redis: Redis, namespace: str) -> set[str]:
    """Ids of the Dramatiq worker processes with a heartbeat in the namespace."""
    return {member.decode() for member in await redis.zrange(f"{namespace}:__heartbeats__", 0, -1)}


async def _more_than(found: Awaitable[set[str]], count: int) -> set[str]:
    ids = await found
    return ids if len(ids) > count else set()


async def until_value(check: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    started = time.monotonic()
    while not (result := await check()):
        assert time.monotonic() - started < within, f"{what}: not within {within} s"
        await asyncio.sleep(0.1)
    return result


COUNT_UPDATES = (
    "SELECT count(id), count(DISTINCT user_id) FROM notifications WHERE type = 'event_updated' AND subject_id = {}"
)


async def test_a_worker_killed_mid_job_has_its_work_redone_within_a_minute_with_default_settings(
    database_url, session, tmp_path
):
    organizer_id, event_id = await seed_crowd(session, ATTENDEES, tag="redo")
    await session.commit()
    env = scaled_env(database_url, TEST_SECRET)
    for faster in ("JOBS_HEARTBEAT_TIMEOUT_MS", "JOBS_MAINTENANCE_CHANCE"):  # the defaults, as deployed
        env.pop(faster)
    env["JOBS_FANOUT_CHUNK_SIZE"] = "500"
    namespace = env["JOBS_NAMESPACE"]
    redis = Redis.from_url(REDIS_URL)
    web = LiveServer(env, tmp_path / "web.log", START_WITHIN)
    first = LiveWorker(env, tmp_path / "worker-1.log", threads=1)
    second = LiveWorker(env, tmp_path / "worker-2.log", threads=1)
    scheduler = LiveScheduler(env, tmp_path / "scheduler.log")
    try:
        # Both workers and the scheduler run before the work arrives: what is measured is how soon
        # the killed worker's jobs are redone, not how long a process takes to start. Each worker
        # is known by its heartbeat in Redis, so the test can see which messages it holds.
        first.start()
        first_id = (await until_value(lambda: workers(redis, namespace), 120, "the first worker is up")).pop()
        second.start()
        await until_value(lambda: _more_than(workers(redis, namespace), 1), 120, "the second worker is up")
        scheduler.start()
        web.start()
        from webapp.auth.tokens import issue_access_token

        token = issue_access_token(organizer_id, TEST_SECRET, timedelta(minutes=5), "test-session")
        async with httpx.AsyncClient(base_url=web.url, timeout=30) as http:
            response = await http.patch(
                f"/api/v1/events/{event_id}",
                json={"venue": "Stadium", "ends_at": (utcnow().replace(microsecond=0) + timedelta(days=9)).isoformat()},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 200, response.text

        async def updates() -> tuple[int, int]:
            [(rows, people)] = await scalar_rows(session, COUNT_UPDATES.format(int(event_id)))
            return int(rows), int(people)

        held_key = f"{namespace}:__acks__.{first_id}.fanout"

        async def first_worker_mid_job() -> bool:
            rows, _ = await updates()
            assert rows < ATTENDEES, "the fan-out finished before the worker could be killed"
            return rows > 0 and int(await redis.scard(held_key)) > 0

        await until(first_worker_mid_job, 60, "the first worker is mid-fan-out")
        first.kill()  # mid-job: it holds a running chunk (and perhaps prefetched ones)
        held = int(await redis.scard(held_key))
        killed_at, _ = await updates()
        assert held > 0

        async def everyone() -> bool:
            return (await updates())[1] == ATTENDEES

        redone = await until(everyone, 120, "every attendee is told")
        print(
            f"\nkilled holding {held} message(s), after {killed_at} of {ATTENDEES} rows; "
            f"another worker finished the work {redone:.1f} s later"
        )

        async def all_completed() -> bool:
            total, _, completed = await outbox_counts(session)
            return total == completed

        await until(all_completed, 90, "every outbox job completes")
        assert await updates() == (ATTENDEES, ATTENDEES)
        assert redone <= 60, f"the killed worker's job was redone after {redone:.1f} s, not within 60 s"
    finally:
        first.kill()
        second.stop()
        scheduler.stop()
        web.stop()
        await redis.aclose()
