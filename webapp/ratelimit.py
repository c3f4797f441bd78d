"""Fixed-window counters for abuse limits: in memory for one process, Redis when shared."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from webapp import metrics
from webapp.errors import RateLimited

log = logging.getLogger("tidings.ratelimit")


class Counter(Protocol):
    async def hit(self, key: str, window_seconds: int) -> int: ...
    async def peek(self, key: str, window_seconds: int) -> int: ...
    async def forget(self, key: str, window_seconds: int) -> None: ...
    # Several keys in one step (one Redis round trip): (key, window_seconds) each.
    async def hit_many(self, keys: Sequence[tuple[str, int]]) -> list[int]: ...
    async def forget_many(self, keys: Sequence[tuple[str, int]]) -> None: ...


class MemoryCounter:
    """One process's windows. Windows that have ended are pruned, at most once per the shortest
    window in use, so memory follows the keys of the current windows, not every key ever seen."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int, float]] = {}  # key -> (window, count, window end)
        self._prune_every = float("inf")
        self._next_prune = float("inf")

    def __len__(self) -> int:
        return len(self._windows)

    def _window(self, window_seconds: int) -> int:
        return int(self._clock() // window_seconds)

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._windows = {key: entry for key, entry in self._windows.items() if entry[2] > now}
        self._next_prune = now + self._prune_every

    async def hit(self, key: str, window_seconds: int) -> int:
        now = self._clock()
        if window_seconds < self._prune_every:
            self._prune_every = window_seconds
            self._next_prune = min(self._next_prune, now + window_seconds)
        self._prune(now)
        window = int(now // window_seconds)
        start, count, _ = self._windows.get(key, (window, 0, 0.0))
        count = count + 1 if start == window else 1
        self._windows[key] = (window, count, (window + 1) * window_seconds)
        return count

    async def peek(self, key: str, window_seconds: int) -> int:
        start, count, _ = self._windows.get(key, (-1, 0, 0.0))
        return count if start == self._window(window_seconds) else 0

    async def forget(self, key: str, window_seconds: int) -> None:
        start, count, end = self._windows.get(key, (-1, 0, 0.0))
        if start == self._window(window_seconds) and count > 0:
            self._windows[key] = (start, count - 1, end)

    async def hit_many(self, keys: Sequence[tuple[str, int]]) -> list[int]:
        return [await self.hit(key, window) for key, window in keys]  # hit never suspends

    async def forget_many(self, keys: Sequence[tuple[str, int]]) -> None:
        for key, window in keys:
            await self.forget(key, window)


# One step in Redis, so a release never drives a count below zero nor revives an expired key.
_DECREMENT_IF_POSITIVE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisCounter:
    """Shared by every process. If Redis is unreachable the limits fail open (and say so in
    the log): an outage of the limiter must not become an outage of logins and announcements."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._prefix = f"{namespace}:rl"  # the deployment's namespace: shared Redis, separate limits

    def _key(self, key: str, window_seconds: int) -> str:
        return f"{self._prefix}:{key}:{int(time.time() // window_seconds)}"

    async def hit(self, key: str, window_seconds: int) -> int:
        return (await self.hit_many([(key, window_seconds)]))[0]

    async def forget(self, key: str, window_seconds: int) -> None:
        await self.forget_many([(key, window_seconds)])

    async def hit_many(self, keys: Sequence[tuple[str, int]]) -> list[int]:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, window_seconds in keys:
                    redis_key = self._key(key, window_seconds)
                    pipe.incr(redis_key)
                    pipe.expire(redis_key, window_seconds)
                replies = await pipe.execute()
        except RedisError as exc:
            metrics.REDIS_ERRORS.labels("rate_limit").inc()
            log.warning("rate limit not recorded, Redis unavailable: %s", exc)
            return [0] * len(keys)
        return [int(count) for count in replies[::2]]

    async def forget_many(self, keys: Sequence[tuple[str, int]]) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, window_seconds in keys:
                    pipe.eval(_DECREMENT_IF_POSITIVE, 1, self._key(key, window_seconds))
                await pipe.execute()
        except RedisError as exc:
            metrics.REDIS_ERRORS.labels("rate_limit").inc()
            log.warning("rate limit not released, Redis unavailable: %s", exc)

    async def peek(self, key: str, window_seconds: int) -> int:
        try:
            value = await self._redis.get(self._key(key, window_seconds))
        except RedisError as exc:
            metrics.REDIS_ERRORS.labels("rate_limit").inc()
            log.warning("rate limit not checked, Redis unavailable: %s", exc)
            return 0
        return int(value or 0)


class RateLimiter:
    def __init__(self, counter: Counter, limit: int, window_seconds: int) -> None:
        self.counter = counter
        self.limit = limit
        self.window_seconds = window_seconds

    async def is_blocked(self, key: str) -> bool:
        return await self.counter.peek(key, self.window_seconds) >= self.limit

    async def record(self, key: str) -> None:
        await self.counter.hit(key, self.window_seconds)

    async def take(self, key: str) -> bool:
        """Counts one attempt and says whether it is within the limit, in one step: the count
        comes back from the same atomic increment (Redis INCR, or a memory update with no await
        in between), so attempts made at the same moment cannot all pass a check made before
        any of them was counted."""
        return await self.counter.hit(key, self.window_seconds) <= self.limit

    async def enforce(self, key: str, message: str) -> None:
        """Counts an attempt, or refuses it (429 with Retry-After) once the window is full;
        a refused attempt is not counted, so the window still ends when it would have."""
        if not await self.take(key):
            await self.give_back(key)
            raise RateLimited(message, retry_after=self.retry_after())

    async def give_back(self, key: str) -> None:
        """Un-counts an attempt that turned out not to be abuse (a login that succeeded)."""
        await self.counter.forget(key, self.window_seconds)

    def retry_after(self) -> int:
        return self.window_seconds - int(time.time()) % self.window_seconds
