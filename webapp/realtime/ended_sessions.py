"""Sessions that have ended, as this process knows them: what makes logout take effect at once.

An access token names its session (`sid`). Checking it must stay a signature check without a
database read, yet a session that ends (logout, a rotated refresh token presented again) must
stop working at once, not when its last access token expires. So each process keeps this small
deny-list of sessions that ended within the last access-token lifetime (an older one needs no
entry: every token it issued has expired by then), and the streams and `/cable` connections of
a session watch it, to close the moment it ends.

It is filled from three sides (see webapp.auth.sessions): the doorbell's `session_ended` ring,
heard by every web process right after the ending transaction commits; the database when the
process starts; and the database again every STREAM_RESYNC_SECONDS, so a lost ring costs at most
that long, never a token's whole lifetime.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

# Processes compare token expiry with their own clocks: keep an entry this much longer.
CLOCK_SKEW_SECONDS = 60.0
DEFAULT_TOKEN_LIFETIME_SECONDS = 900.0


def _nothing() -> None:
    return None


class EndedSessions:
    def __init__(self, token_lifetime_seconds: float = DEFAULT_TOKEN_LIFETIME_SECONDS) -> None:
        self.remember_seconds = token_lifetime_seconds + CLOCK_SKEW_SECONDS
        self._forget_at: dict[str, float] = {}  # session → monotonic time its entry may go
        self._watchers: dict[str, set[Callable[[], None]]] = {}

    def __len__(self) -> int:
        return len(self._forget_at)

    def is_ended(self, session: str) -> bool:
        forget_at = self._forget_at.get(session)
        return forget_at is not None and forget_at > time.monotonic()

    def end(self, session: str) -> None:
        """The session ended just now (a doorbell ring)."""
        self.record([(session, 0.0)])

    def record(self, ended: Iterable[tuple[str, float]]) -> None:
        """Sessions that ended `seconds_ago` each (a ring, or a read of the database)."""
        now = time.monotonic()
        for session, seconds_ago in ended:
            forget_at = now - max(seconds_ago, 0.0) + self.remember_seconds
            if forget_at <= now:
                continue
            self._forget_at[session] = max(forget_at, self._forget_at.get(session, 0.0))
            for callback in self._watchers.pop(session, ()):
                callback()
        self._forget_at = {s: t for s, t in self._forget_at.items() if t > now}

    def watch(self, session: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Calls `callback` (once, on the event loop) when the session ends; returns the function
        that stops watching. A session that has already ended calls back at once: it may have
        ended between the check of the token and this call."""
        if self.is_ended(session):
            asyncio.get_running_loop().call_soon(callback)
            return _nothing
        watchers = self._watchers.setdefault(session, set())
        watchers.add(callback)

        def unwatch() -> None:
            remaining = self._watchers.get(session)
            if remaining is not None:
                remaining.discard(callback)
                if not remaining:
                    del self._watchers[session]

        return unwatch
