"""Redis and database errors are counted where they happen, under bounded labels: the Redis
operation that failed, the kind of database error. Redis "down" is a port that refuses every
connection; the database errors are real ones of the database under test."""

from __future__ import annotations

import asyncio
import dataclasses

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.api import register
from tidings.app import create_app
from webapp import metrics
from webapp.db import create_engine
from webapp.outbox import services as outbox
from webapp.ratelimit import RedisCounter
from webapp.realtime.doorbell import RedisDoorbell
from webapp.settings import Settings

REDIS_ERRORS = "tidings_redis_errors_total"
DATABASE_ERRORS = "tidings_database_errors_total"


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def refused_redis(refused_port: int) -> str:
    return f"redis://127.0.0.1:{refused_port}/0"


def test_every_redis_operation_and_database_error_kind_shows_from_the_start() -> None:
    for operation in metrics.REDIS_OPERATIONS:
        assert metrics.REGISTRY.get_sample_value(REDIS_ERRORS, {"operation": operation}) is not None, operation
    for kind in metrics.DATABASE_ERROR_KINDS:
        assert metrics.REGISTRY.get_sample_value(DATABASE_ERRORS, {"kind": kind}) is not None, kind


async def test_a_rate_limit_call_to_an_unreachable_redis_counts_a_rate_limit_error(refused_redis: str) -> None:
    client = Redis.from_url(refused_redis, socket_timeout=1, socket_connect_timeout=1)
    counter = RedisCounter(client, "tidings-test")
    before = sample(REDIS_ERRORS, operation="rate_limit")
    try:
        assert await counter.hit("login:someone", 60) == 0  # fails open
        assert await counter.peek("login:someone", 60) == 0
        await counter.forget("login:someone", 60)
    finally:
        await client.aclose()
    assert sample(REDIS_ERRORS, operation="rate_limit") - before == 3


async def test_a_doorbell_that_cannot_publish_or_listen_counts_each_failure(refused_redis: str) -> None:
    publish_before = sample(REDIS_ERRORS, operation="doorbell_publish")
    listen_before = sample(REDIS_ERRORS, operation="doorbell_listen")
    doorbell = RedisDoorbell(refused_redis, "tidings-test", {"socket_timeout": 1, "socket_connect_timeout": 1})
    await doorbell.start()
    try:
        doorbell.ring([{"type": "count", "user": 1, "unread_count": 0, "version": 1}])
        deadline = asyncio.get_running_loop().time() + 10
        while sample(REDIS_ERRORS, operation="doorbell_listen") == listen_before:
            assert asyncio.get_running_loop().time() < deadline, "the listener's failure was not counted"
            await asyncio.sleep(0.05)
    finally:
        await doorbell.stop()  # waits for the publish in flight
    assert sample(REDIS_ERRORS, operation="doorbell_publish") - publish_before == 1
    assert sample(REDIS_ERRORS, operation="doorbell_listen") - listen_before >= 1


def test_a_job_hand_over_to_an_unreachable_redis_broker_counts_a_job_enqueue_error(refused_redis: str) -> None:
    broker = RedisBroker(client=redis.Redis.from_url(refused_redis, socket_timeout=1, socket_connect_timeout=1))

    def send(actor_name: str, kwargs: dict[str, object]) -> None:
        broker.enqueue(
            dramatiq.Message(queue_name="default", actor_name=actor_name, args=(), kwargs=kwargs, options={})
        )

    before = sample(REDIS_ERRORS, operation="job_enqueue")
    outbox.set_dispatcher(send)
    try:
        assert outbox.dispatch([(1, "send_booking_cancelled", {"booking_id": 1}), (2, "x", {})]) == []
    finally:
        from jobs.dispatch import send_by_name

        outbox.set_dispatcher(send_by_name)
        broker.close()
    assert sample(REDIS_ERRORS, operation="job_enqueue") - before == 2


async def test_a_readiness_probe_whose_redis_refuses_counts_a_readiness_error(
    settings: Settings, refused_redis: str
) -> None:
    down = dataclasses.replace(settings, redis_url=refused_redis, redis_timeout_seconds=1.0)
    before = sample(REDIS_ERRORS, operation="readiness")
    async with AsyncTestClient(create_app(down), base_url="http://127.0.0.1:8000") as client:
        assert (await client.get("/health/ready")).status_code == 503
    assert sample(REDIS_ERRORS, operation="readiness") - before == 1


async def test_a_constraint_the_database_refuses_counts_an_integrity_error(client, engine) -> None:  # type: ignore[no-untyped-def]
    user, _ = await register(client)
    before = sample(DATABASE_ERRORS, kind="integrity")
    async with engine.connect() as conn:
        with pytest.raises(IntegrityError):  # the same email again
            await conn.execute(
                text(
                    "INSERT INTO users (email, name, password_hash, timezone, role, created_at) "
                    "SELECT email, name, password_hash, timezone, role, created_at FROM users WHERE id = :id"
                ),
                {"id": user["id"]},
            )
        await conn.rollback()
    assert sample(DATABASE_ERRORS, kind="integrity") - before == 1


async def test_a_database_that_refuses_connections_counts_an_unavailable_error(refused_port: int) -> None:
    down = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{refused_port}/tidings")
    before = sample(DATABASE_ERRORS, kind="unavailable")
    try:
        with pytest.raises((DBAPIError, OSError)):
            async with down.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await down.dispose()
    assert sample(DATABASE_ERRORS, kind="unavailable") - before == 1
