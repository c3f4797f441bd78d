"""With REDIS_URL the login limit is shared by every web process."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from tests.services import REDIS_URL, missing_service, redis_available
from webapp.auth.services import LoginGuard
from webapp.errors import RateLimited
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
    return LoginGuard(per_account=RateLimiter(counter, 3, 60), per_address=RateLimiter(counter, 5, 60))


async def test_failures_counted_by_one_process_block_logins_in_another(redis):
    email = f"{uuid.uuid4().hex}@example.com"
    address = f"10.0.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"  # fresh: windows outlive a run
    first_process, second_process = guard(redis), guard(redis)
    for _ in range(3):
        await first_process.check(email, address)
        await first_process.record_failure(email, address)
    with pytest.raises(RateLimited) as blocked:
        await second_process.check(email, "10.0.0.2")
    assert 0 < blocked.value.retry_after <= 60
    keys = [key async for key in redis.scan_iter(match=f"{NAMESPACE}:rl:login:acct:{email}:*")]
    assert keys and 0 < await redis.ttl(keys[0]) <= 60


async def test_the_address_limit_spans_accounts(redis):
    address = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    limiter = guard(redis)
    for n in range(5):
        await limiter.record_failure(f"{uuid.uuid4().hex}-{n}@example.com", address)
    with pytest.raises(RateLimited):
        await limiter.check("fresh@example.com", address)
    await limiter.check("fresh@example.com", "10.200.0.1")  # another address is unaffected


async def test_limits_fail_open_when_redis_is_unreachable(caplog):
    from tests.services import free_port

    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    limiter = guard(unreachable)
    await limiter.record_failure("someone@example.com", "10.1.1.1")
    await limiter.check("someone@example.com", "10.1.1.1")  # no exception: logins keep working
    assert any("Redis unavailable" in record.getMessage() for record in caplog.records)
    await unreachable.aclose()
