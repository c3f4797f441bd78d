"""With REDIS_URL the login limit is shared by every web process."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from tests.services import REDIS_URL, missing_service, redis_available
from webapp.auth.services import LoginGuard
from webapp.errors import RateLimited, Unauthorized
from webapp.ratelimit import RateLimiter, RedisCounter


@pytest.fixture
async def redis():
    if not redis_available():
        missing_service(f"Redis is not answering at {REDIS_URL}")
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


NAMESPACE = f"tidings-test:{uuid.uuid4().hex[:8]}"


def guard(redis: Redis) -> LoginGuard:
    counter = RedisCounter(redis, NAMESPACE)
    return LoginGuard(
        per_account_address=RateLimiter(counter, 3, 60),
        per_address=RateLimiter(counter, 5, 60),
        per_account=RateLimiter(counter, 8, 60),
    )


async def wrong_password() -> None:
    raise Unauthorized("Wrong email or password.")


async def right_password() -> str:
    return "signed in"


async def fail(limiter: LoginGuard, email: str, address: str) -> None:
    with pytest.raises(Unauthorized):
        await limiter.verify(email, address, wrong_password)


async def test_failures_counted_by_one_process_block_logins_in_another(redis):
    email = f"{uuid.uuid4().hex}@example.com"
    address = f"10.0.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"  # fresh: windows outlive a run
    first_process, second_process = guard(redis), guard(redis)
    for _ in range(3):
        await fail(first_process, email, address)
    with pytest.raises(RateLimited) as blocked:
        await second_process.verify(email, address, right_password)
    assert 0 < blocked.value.retry_after <= 60
    keys = [key async for key in redis.scan_iter(match=f"{NAMESPACE}:rl:login:acct:{email}:*")]
    assert keys and 0 < await redis.ttl(keys[0]) <= 60


async def test_the_account_throttle_spans_addresses_but_is_slower(redis):
    email = f"{uuid.uuid4().hex}@example.com"
    limiter = guard(redis)
    for n in range(8):
        await fail(limiter, email, f"10.8.{n}.{uuid.uuid4().int % 250}")  # 1 each: no address limit met
    with pytest.raises(RateLimited):
        await limiter.verify(email, "10.201.0.1", right_password)


async def test_the_address_limit_spans_accounts(redis):
    address = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    limiter = guard(redis)
    for n in range(5):
        await fail(limiter, f"{uuid.uuid4().hex}-{n}@example.com", address)
    with pytest.raises(RateLimited):
        await limiter.verify("fresh@example.com", address, right_password)
    assert await limiter.verify("fresh@example.com", "10.200.0.1", right_password) == "signed in"


async def test_a_hundred_checks_at_once_in_two_processes_run_at_most_the_limit(redis):
    """INCR counts and answers in one step: no check can slip in between."""
    import asyncio

    email = f"{uuid.uuid4().hex}@example.com"
    address = f"10.7.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    processes = [guard(redis), guard(redis)]
    checked = 0

    async def slow_wrong_password() -> None:
        nonlocal checked
        checked += 1
        await asyncio.sleep(0.05)
        raise Unauthorized("Wrong email or password.")

    results = await asyncio.gather(
        *(processes[n % 2].verify(email, address, slow_wrong_password) for n in range(100)),
        return_exceptions=True,
    )
    assert checked == 3
    assert sum(isinstance(r, RateLimited) for r in results) == 97


async def test_limits_fail_open_when_redis_is_unreachable(caplog):
    from tests.services import free_port

    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    limiter = guard(unreachable)
    await fail(limiter, "someone@example.com", "10.1.1.1")
    # no exception: logins keep working
    assert await limiter.verify("someone@example.com", "10.1.1.1", right_password) == "signed in"
    assert any("Redis unavailable" in record.getMessage() for record in caplog.records)
    await unreachable.aclose()
