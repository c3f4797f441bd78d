"""Runs a request's unit of work again when it lost a race with another transaction.

A deadlock or serialization failure (PostgreSQL) or a write lock that stayed busy (SQLite) rolls
the request's transaction back; the error handler answers 503 and flags the scope. This
middleware sees the flag before anything reaches the client, drops that answer and runs the
request again, a few times with jitter. Only the last attempt's answer is sent, so a client
sees either a completed request or a 503 with Retry-After, never a 500.
"""

from __future__ import annotations

import asyncio
import copy
import random
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.scope.state import CONNECTION_STATE_KEY, ScopeState

from webapp.http import RETRY_REQUESTED
from webapp.long_lived import LONG_LIVED
from webapp.probes import is_probe

MAX_ATTEMPTS = 4
BASE_DELAY_SECONDS = 0.02


class RetryConflictsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["route_handler"].opt.get(LONG_LIVED) or is_probe(scope):
            await self.app(scope, receive, send)
            return
        # Read the body once; Litestar keeps it in the connection state every attempt starts from.
        await Request(scope, receive).body()
        state = ScopeState.from_scope(scope)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            # Each attempt gets its own copy of that state, so nothing one attempt recorded
            # (e.g. that its withheld answer had started) leaks into the next.
            attempt_scope: Any = {**scope, "state": {**scope["state"], CONNECTION_STATE_KEY: copy.copy(state)}}
            if await self._attempt(attempt_scope, receive, send, last=attempt == MAX_ATTEMPTS):
                return
            await asyncio.sleep(random.uniform(0.5, 1.5) * BASE_DELAY_SECONDS * 2**attempt)

    async def _attempt(self, scope: Any, receive: Receive, send: Send, *, last: bool) -> bool:
        """Runs the app once; False when it asked to be run again (its answer was withheld)."""
        withheld = False

        async def send_unless_retrying(message: Message) -> None:
            nonlocal withheld
            if message["type"] == "http.response.start" and scope.get(RETRY_REQUESTED) and not last:
                withheld = True
            if not withheld:
                await send(message)

        await self.app(scope, receive, send_unless_retrying)
        return not withheld
