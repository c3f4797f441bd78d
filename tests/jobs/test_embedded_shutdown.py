"""Embedded mode stops cleanly: a job still running when the web process stops ends first, and so
does what its commit started on the jobs' loop (the hand-over of the rows it wrote to the outbox).

The jobs' event loop used to be stopped 5 s into the shutdown whatever ran on it, and their
engine disposed before that: a job then slower than 5 s (a fan-out on a loaded machine) was
abandoned halfway through its transaction. On SQLite its connection kept the write lock for the
rest of the process's life, and every later write failed with "database is locked".
"""

from __future__ import annotations

import asyncio
import threading
import time

import dramatiq
from sqlalchemy import select

from jobs import runtime
from jobs.embedded import EmbeddedJobs
from webapp.db import create_sessionmaker, utcnow
from webapp.notifications.models import ExpiryWatermark
from webapp.outbox import services as outbox
from webapp.outbox.models import OutboxMessage

JOB_SECONDS = 6.0  # longer than the 5 s the old shutdown gave a job
_started = threading.Event()
_committed = threading.Event()
SLOW_HAND_OVER_SECONDS = 1.5


@dramatiq.actor(queue_name="test_slow_job", max_retries=0)
async def write_slowly(seconds: float) -> None:
    async with runtime.session() as db:
        db.add(ExpiryWatermark(id=1, told_up_to=utcnow()))
        await db.flush()  # the write lock (SQLite) or the row's lock (PostgreSQL) is now held
        _started.set()
        await asyncio.sleep(seconds)
        await db.commit()


@dramatiq.actor(queue_name="test_slow_job", max_retries=0)
async def write_a_follow_up() -> None:
    async with runtime.session() as db:
        outbox.enqueue_after_commit(db, write_slowly.actor_name, seconds=0)
        await db.commit()  # the hand-over now runs as a task of the jobs' loop
    _committed.set()


async def test_a_hand_over_started_by_a_job_is_finished_before_its_loop_stops(settings, engine, monkeypatch):
    """The job itself is over at once; the hand-over its commit started is slow (a busy broker).
    It used to be abandoned with the loop (and, caught inside its own transaction, it kept
    SQLite's write lock for the rest of the process): now the worker stops after it."""
    send = outbox._dispatcher
    assert send is not None

    def slow_send(actor_name: str, payload: dict) -> None:
        time.sleep(SLOW_HAND_OVER_SECONDS)
        send(actor_name, payload)

    monkeypatch.setattr(outbox, "_dispatcher", slow_send)
    embedded = EmbeddedJobs(settings, create_sessionmaker(engine), run_scheduler=False)
    embedded.start()
    _committed.clear()
    write_a_follow_up.send()
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, _committed.wait, 10), "the job did not run"
    await loop.run_in_executor(None, embedded.stop)
    dramatiq.get_broker().flush_all()  # the follow-up itself is not this test's business
    async with create_sessionmaker(engine)() as session:
        row = await session.scalar(select(OutboxMessage))
        assert row is not None and row.enqueued_at is not None, "the hand-over was abandoned"


async def test_a_job_running_at_shutdown_commits_before_its_loop_stops(settings, engine):
    embedded = EmbeddedJobs(settings, create_sessionmaker(engine), run_scheduler=False)
    embedded.start()
    _started.clear()
    write_slowly.send(JOB_SECONDS)
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, _started.wait, 10), "the job did not start"
    await loop.run_in_executor(None, embedded.stop)
    async with create_sessionmaker(engine)() as session:
        assert await session.scalar(select(ExpiryWatermark.id)) == 1, "the job was cut off mid-transaction"
        # Nothing is left holding a lock: this write goes through at once.
        await session.merge(ExpiryWatermark(id=1, told_up_to=utcnow()))
        await session.commit()


def test_a_stopped_worker_leaves_nothing_on_the_broker(settings, engine):
    """Dramatiq's worker puts a middleware of its own on the process-wide broker and never takes
    it off. Apps started again in one process (the test suite starts hundreds) piled them up:
    each start warned once per stopped worker, every message's hooks ran through all of them,
    and a queue declared later got consumers for workers long stopped."""
    broker = dramatiq.get_broker()
    before = list(broker.middleware)
    for _ in range(2):
        embedded = EmbeddedJobs(settings, create_sessionmaker(engine), run_scheduler=False)
        embedded.start()
        embedded.stop()
        assert broker.middleware == before
