"""Retries and the dead-letter queue, on the broker configuration the app uses (jobs.broker)."""

from __future__ import annotations

import logging

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
    logged = [r.getMessage() for r in caplog.records if r.name == "tidings.jobs"]
    assert any("moved to the dead-letter queue" in line and "doomed_job" in line for line in logged), logged
