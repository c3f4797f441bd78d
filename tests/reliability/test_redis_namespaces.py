"""Two deployments (separate databases) on one Redis server never see each other's traffic.

Nothing is configured: each deployment's Redis namespace derives from its database, so the
doorbell channel, the rate-limit counters and the job queues of one are invisible to the other.
The same account id and email exist in both deployments, so any shared key would show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import insert, select

from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET
from tests.reliability.conftest import (
    WATCHED_LOGS,
    add_notifications,
    clean_shutdown,
    log_tail,
    register,
    server_env,
    start_all,
    stop_all,
)
from tests.reliability.sse import Event, open_stream
from tests.services import (
    REDIS_URL,
    LiveServer,
    clear_of_a_limit_window_edge,
    missing_service,
    redis_available,
    throwaway_postgres_database,
)
from tidings.cli import upgrade_database
from webapp.auth.models import User
from webapp.db import create_engine, create_sessionmaker
from webapp.realtime.doorbell import RedisDoorbell, current_doorbell, set_doorbell
from webapp.settings import Settings, load_settings


@pytest.fixture(scope="module")
def other_database_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Deployment B's database: of the same kind as the run's, but another one."""
    if database_url.startswith("postgresql"):
        with throwaway_postgres_database(database_url) as url:
            upgrade_database(url)
            yield url
        return
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('deployment-b') / 'tidings.db'}"
    upgrade_database(url)
    yield url


def deployment_env(database_url: str) -> dict[str, str]:
    # Empty means unset: whatever this shell has, the namespaces must come from the database.
    return server_env(database_url, REDIS_URL=REDIS_URL, REDIS_NAMESPACE="", JOBS_NAMESPACE="")


def deployment_settings(database_url: str) -> Settings:
    return load_settings({**deployment_env(database_url), "SECRET_KEY": TEST_SECRET})


@pytest.fixture(scope="module")
def deployments(database_url: str, other_database_url: str, tmp_path_factory: pytest.TempPathFactory):
    if not redis_available():
        missing_service(f"Redis is not answering at {REDIS_URL}")
    folder: Path = tmp_path_factory.mktemp("two-deployments")
    a = LiveServer(deployment_env(database_url), folder / "a.log")
    b = LiveServer(deployment_env(other_database_url), folder / "b.log")
    WATCHED_LOGS.extend([a.log_path, b.log_path])
    # One after the other: two interpreters importing at once on a busy machine can each take
    # longer than LiveServer's start deadline.
    start_all([a])
    try:
        start_all([b])
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        with clean_shutdown([a.log_path, b.log_path]):
            stop_all([a, b])


async def subscribers(redis: Redis, channel: str) -> int:
    counts = await redis.pubsub_numsub(channel)
    return int(counts[0][1]) if counts else 0


async def copy_account(columns: dict[str, object], database_url: str) -> None:
    """The same id, email and password in deployment B's database."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(insert(User).values(**columns))
            await session.commit()
    finally:
        await engine.dispose()


async def login(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_two_deployments_on_one_redis_never_share_notifications_or_limits(
    deployments, database_url, other_database_url, session
):
    a, b = deployments
    settings_a, settings_b = deployment_settings(database_url), deployment_settings(other_database_url)
    assert settings_a.redis_namespace != settings_b.redis_namespace
    assert settings_a.jobs_namespace != settings_b.jobs_namespace
    bell_a = RedisDoorbell.from_settings(settings_a, listen=False)  # rings as deployment A's processes do
    redis = Redis.from_url(REDIS_URL)
    previous = current_doorbell()
    try:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
        ):
            member = await register(on_a)
            account = await session.scalar(select(User).where(User.id == member.id))
            assert account is not None
            columns = {c.key: getattr(account, c.key) for c in User.__table__.columns}
            email = account.email
            await session.rollback()  # on SQLite an open transaction would lock deployment A out
            await copy_account(columns, other_database_url)
            signed_in_b = await login(on_b, email, DEFAULT_PASSWORD)
            assert signed_in_b.status_code == 200, signed_in_b.text
            assert signed_in_b.json()["user"]["id"] == member.id  # the same account id in both

            channel_b = RedisDoorbell.from_settings(settings_b).channel
            deadline = time.monotonic() + 20
            while not (await subscribers(redis, bell_a.channel) and await subscribers(redis, channel_b)):
                assert time.monotonic() < deadline, f"listeners not up:\n{log_tail(a)}\n{log_tail(b)}"
                await asyncio.sleep(0.05)

            async with (
                open_stream(on_a, member.token, last_event_id=0) as stream_a,
                open_stream(on_b, signed_in_b.json()["token"], last_event_id=0) as stream_b,
            ):
                assert stream_a.status == 200 and stream_b.status == 200
                for stream in (stream_a, stream_b):
                    opening = await stream.next_event(10)
                    assert isinstance(opening, Event) and opening.event == "notification_count", opening

                set_doorbell(bell_a)
                await add_notifications(session, member.id, 1, "only for deployment A")
                [delivered] = await stream_a.notifications(1, within=10)  # live, through Redis
                assert delivered.json()["title"] == "only for deployment A 0"
                # B's stream has had a full heartbeat period after A got the ring: nothing came.
                leaked = await stream_b.until_heartbeat(10) + await stream_b.until_heartbeat(10)
                assert leaked == [], f"deployment B's stream received deployment A's ring: {leaked}"
            # B's channel has exactly B's server on it (its database is B's alone); A's has A's server
            # and may have other processes of deployment A that this test session started on the same
            # database. That B's server is not on A's channel the silent stream above proves.
            assert await subscribers(redis, bell_a.channel) >= 1 and await subscribers(redis, channel_b) == 1

            # Failed logins in A block the account in A only.
            await clear_of_a_limit_window_edge()
            for _ in range(settings_a.login_attempts_per_window):
                failed = await login(on_a, email, "wrong password")
                assert failed.status_code == 401, failed.text
            blocked = await login(on_a, email, DEFAULT_PASSWORD)
            assert blocked.status_code == 429, blocked.text
            again_b = await login(on_b, email, DEFAULT_PASSWORD)
            assert again_b.status_code == 200, f"deployment A's login limit blocked B: {again_b.text}"
            keys_a = [k async for k in redis.scan_iter(match=f"{settings_a.redis_namespace}:rl:login:acct:*")]
            keys_b = [k async for k in redis.scan_iter(match=f"{settings_b.redis_namespace}:rl:login:acct:*")]
            # B counted its own (successful) check and gave it back; A's failures are A's alone.
            failures_a = [int(await redis.get(k) or 0) for k in keys_a]
            failures_b = [int(await redis.get(k) or 0) for k in keys_b]
            assert failures_a and max(failures_a) >= settings_a.login_attempts_per_window, (keys_a, failures_a)
            assert not any(failures_b), (keys_b, failures_b)
    finally:
        set_doorbell(previous)
        await bell_a.stop()
        await redis.aclose()
