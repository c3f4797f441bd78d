"""The in-memory rate-limit store forgets windows that have ended, so it does not grow with every
distinct key (login addresses, accounts, senders) a long-running process has ever seen."""

from __future__ import annotations

import sys

from webapp.ratelimit import MemoryCounter, RateLimiter

KEYS = 10_000
WINDOW = 300


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def footprint(counter: MemoryCounter) -> int:
    windows = counter._windows  # the store itself: the figure this test is about
    return sys.getsizeof(windows) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in windows.items())


async def test_windows_of_many_distinct_keys_are_pruned_once_they_have_ended():
    clock = Clock()
    counter = MemoryCounter(clock)
    limiter = RateLimiter(counter, limit=5, window_seconds=WINDOW)
    for n in range(KEYS):
        await limiter.record(f"login:address:10.0.{n // 256}.{n % 256}")
    assert len(counter) == KEYS
    before = footprint(counter)

    clock.now += WINDOW  # every one of those windows has ended
    await limiter.record("login:address:192.0.2.1")
    after = footprint(counter)
    print(f"\n[rate limit] {KEYS} keys: {before // 1024} KiB; after the window: {len(counter)} key, {after} B")
    assert len(counter) == 1
    assert after < before // 100


async def test_pruning_keeps_the_counts_of_windows_still_running():
    clock = Clock()
    counter = MemoryCounter(clock)
    short = RateLimiter(counter, limit=3, window_seconds=60)
    long = RateLimiter(counter, limit=3, window_seconds=3600)
    for _ in range(3):
        await long.record("announce:7")
    clock.now = (clock.now // 3600) * 3600 + 10  # early in the hour-long window
    await short.record("login:a")
    clock.now += 120  # the minute window is over, the hour is not
    await short.record("login:b")
    assert await long.is_blocked("announce:7")
    assert await counter.peek("login:a", 60) == 0
    assert len(counter) == 2  # announce:7 and login:b; login:a is gone


async def test_password_checks_started_together_are_counted_before_any_runs():
    """The in-memory store: a hundred checks at once, each awaiting a slow verification."""
    import asyncio

    from webapp.auth.services import LoginGuard
    from webapp.errors import RateLimited, Unauthorized

    counter = MemoryCounter()
    guard = LoginGuard(
        per_account_address=RateLimiter(counter, 5, 300),
        per_address=RateLimiter(counter, 30, 300),
        per_account=RateLimiter(counter, 100, 3600),
    )
    checked = 0

    async def wrong_password() -> None:
        nonlocal checked
        checked += 1
        await asyncio.sleep(0.05)  # argon2 in its thread
        raise Unauthorized("Wrong email or password.")

    results = await asyncio.gather(
        *(guard.verify("target@example.com", "192.0.2.1", wrong_password) for _ in range(100)),
        return_exceptions=True,
    )
    assert checked == 5
    assert sum(isinstance(r, Unauthorized) for r in results) == 5
    assert sum(isinstance(r, RateLimited) for r in results) == 95
    # Refused attempts were not counted: the window holds the five checks that ran.
    assert await counter.peek("login:acct-addr:target@example.com|192.0.2.1", 300) == 5
