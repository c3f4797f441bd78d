"""Retries and the dead-letter queue, on the broker configuration the app uses (jobs.broker)."""

from __future__ import annotations

import logging
import time

import dramatiq
import pytest
from dramatiq import Worker

import jobs  # noqa: F401 - configures the broker the actors below are declared on

QUEUE = "test-retries"
attempts: list[str] = []
effects: list[str] = []


@dramatiq.actor(queue_name=QUEUE, max_retries=4, min_backoff=10, max_backoff=40)
async def flaky_job(key: str) -> None:
    attempts.append(key)
    if attempts.count(key) < 3:
        raise ConnectionError("the database went away for a moment")
    effects.append(key)


@dramatiq.actor(queue_name=QUEUE, max_retries=2, min_backoff=10, max_backoff=40)
async def doomed_job() -> None:
    attempts.append("doomed")
    raise ValueError("this can never work")


@pytest.fixture
def worker():
    broker = dramatiq.get_broker()
    worker = Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    yield broker
    worker.stop()
    attempts.clear()
    effects.clear()


def test_a_transient_failure_is_retried_and_succeeds_once(worker):
    flaky_job.send("a")
    worker.join(QUEUE, fail_fast=False, timeout=10_000)
    assert attempts == ["a", "a", "a"]
    assert effects == ["a"]


def test_a_permanent_failure_lands_in_the_dead_letter_queue_and_the_log(worker, caplog):
    caplog.set_level(logging.ERROR, logger="tidings.jobs")
    before = len(worker.dead_letters)
    message = doomed_job.send()
    worker.join(QUEUE, fail_fast=False, timeout=10_000)
    assert attempts == ["doomed"] * 3  # the first try and two retries
    assert [m.message_id for m in worker.dead_letters[before:]] == [message.message_id]

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "tidings.jobs"]

    # The broker counts the message done before its dead-letter hook runs: wait for the hook.
    deadline = time.monotonic() + 5
    while not any("moved to the dead-letter queue" in line and "doomed_job" in line for line in logged()):
        assert time.monotonic() < deadline, logged()
        time.sleep(0.01)


def job_counts(actor: str) -> tuple[float, float, float]:
    """(failures, retries, dead letters) of an actor, as /metrics shows them."""
    from webapp import metrics

    return tuple(  # type: ignore[return-value]
        metrics.REGISTRY.get_sample_value(f"tidings_job_{name}_total", {"actor": actor}) or 0.0
        for name in ("failures", "retries", "dead_letters")
    )


def test_failures_retries_and_dead_letters_are_counted_by_actor(worker):
    before = {actor: job_counts(actor) for actor in ("flaky_job", "doomed_job")}
    flaky_job.send("m")
    doomed_job.send()
    worker.join(QUEUE, fail_fast=False, timeout=10_000)

    def moved(actor: str) -> tuple[float, ...]:
        return tuple(now - then for now, then in zip(job_counts(actor), before[actor], strict=True))

    assert moved("flaky_job") == (2, 2, 0)  # failed twice, retried twice, then succeeded
    deadline = time.monotonic() + 5  # the dead-letter hook runs after the broker counts the message done
    while moved("doomed_job")[2] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert moved("doomed_job") == (3, 2, 1)  # the first try and two retries failed, then dead


@dramatiq.actor(queue_name=QUEUE, max_retries=1, min_backoff=10, max_backoff=40)
async def doomed_outbox_job(outbox_id: int | None = None) -> None:
    from jobs import runtime

    async with runtime.session(outbox_id):
        attempts.append("doomed outbox job")
        raise ValueError("this can never work either")


async def test_an_outbox_job_in_the_dead_letter_queue_marks_its_row_failed_and_is_not_sent_again(
    worker, session, settings
):
    from datetime import timedelta

    from dramatiq.asyncio import get_event_loop_thread
    from sqlalchemy import select

    from jobs import runtime
    from tests.api import eventually
    from webapp.db import utcnow
    from webapp.outbox.models import OutboxMessage
    from webapp.outbox.services import redeliver_unfinished

    runtime.configure(settings)
    row = OutboxMessage(actor_name="doomed_outbox_job", payload={}, enqueued_at=utcnow(), attempts=1)
    session.add(row)
    await session.commit()
    row_id = row.id
    doomed_outbox_job.send(outbox_id=row_id)

    async def marked_failed():
        failed_at, completed_at = (
            await session.execute(
                select(OutboxMessage.failed_at, OutboxMessage.completed_at).where(OutboxMessage.id == row_id)
            )
        ).one()
        await session.rollback()
        return failed_at is not None and completed_at is None

    try:
        worker.join(QUEUE, fail_fast=False, timeout=10_000)
        # The dead-letter hook runs once the message has left the queue.
        assert await eventually(marked_failed)
    finally:
        get_event_loop_thread().run_coroutine(runtime.dispose())  # the jobs' engine on the worker's loop
    assert attempts == ["doomed outbox job"] * 2
    assert await redeliver_unfinished(session, utcnow() + timedelta(hours=1), timedelta(0), timedelta(0), 5) == 0
    await session.rollback()


@dramatiq.actor(queue_name=QUEUE, max_retries=4, min_backoff=10, max_backoff=40)
async def bad_data_job(outbox_id: int | None = None) -> None:
    from jobs import runtime
    from webapp.errors import ValidationFailed

    async with runtime.session(outbox_id):
        attempts.append("bad data")
        raise ValidationFailed({"title": "A notification needs a title."})


async def test_a_permanent_error_is_not_retried_and_is_dead_lettered_logged_once_and_marked_failed(
    worker, session, settings, caplog
):
    """Bad data fails the same way every time: no retries (hours of them would only hide it), the
    dead-letter queue at once, one ERROR line naming the actor and the message, and the outbox row
    marked failed."""
    from dramatiq.asyncio import get_event_loop_thread
    from sqlalchemy import select

    from jobs import runtime
    from tests.api import eventually
    from webapp.db import utcnow
    from webapp.outbox.models import OutboxMessage

    caplog.set_level(logging.INFO)
    runtime.configure(settings)
    row = OutboxMessage(actor_name="bad_data_job", payload={}, enqueued_at=utcnow(), attempts=1)
    session.add(row)
    await session.commit()
    row_id = row.id
    before = len(worker.dead_letters)
    message = bad_data_job.send(outbox_id=row_id)

    async def marked_failed():
        failed_at = await session.scalar(select(OutboxMessage.failed_at).where(OutboxMessage.id == row_id))
        await session.rollback()
        return failed_at is not None

    try:
        worker.join(QUEUE, fail_fast=False, timeout=10_000)
        assert await eventually(marked_failed)
    finally:
        get_event_loop_thread().run_coroutine(runtime.dispose())
    assert attempts == ["bad data"]
    assert [m.message_id for m in worker.dead_letters[before:]] == [message.message_id]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "bad_data_job" in errors[0] and message.message_id in errors[0] and "ValidationFailed" in errors[0]
