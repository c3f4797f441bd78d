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


def guard(redis: Redis) -> LoginGuard:
    counter = RedisCounter(redis)
    return LoginGuard(per_account=RateLimiter(counter, 3, 60), per_address=RateLimiter(counter, 5, 60))


async def test_failures_counted_by_one_process_block_logins_in_another(redis):
    email = f"{uuid.uuid4().hex}@example.com"
    first_process, second_process = guard(redis), guard(redis)
    for _ in range(3):
        await first_process.check(email, "10.0.0.1")
        await first_process.record_failure(email, "10.0.0.1")
    with pytest.raises(RateLimited) as blocked:
        await second_process.check(email, "10.0.0.2")
    assert 0 < blocked.value.retry_after <= 60
    keys = [key async for key in redis.scan_iter(match=f"tidings:rl:login:acct:{email}:*")]
    assert keys and 0 < await redis.ttl(keys[0]) <= 60


async def test_the_address_limit_spans_accounts(redis):
    address = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    limiter = guard(redis)
    for n in range(5):
        await limiter.record_failure(f"{uuid.uuid4().hex}-{n}@example.com", address)
    with pytest.raises(RateLimited):
        await limiter.check("fresh@example.com", address)
    await limiter.check("fresh@example.com", "10.200.0.1")  # another address is unaffected
