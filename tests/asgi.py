"""The server side of one ASGI HTTP connection, for tests that call an answer directly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class Client:
    """What was sent, and a way to leave."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "http.request", "body": b"", "more_body": False})

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def leave(self) -> None:
        self.incoming.put_nowait({"type": "http.disconnect"})

    def bodies(self) -> list[tuple[bytes, bool]]:
        return [(m["body"], m["more_body"]) for m in self.sent if m["type"] == "http.response.body"]


async def until(condition: Any) -> None:
    """Lets the loop run until `condition()` holds (at most 100 turns: for work in this loop
    alone; what waits on a thread or a socket needs holds_within)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def holds_within(condition: Callable[[], object], seconds: float) -> None:
    """Waits until `condition()` holds, at most `seconds` of time (not of loop turns: a read in
    a database's thread can take many turns on a busy machine)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"the condition did not hold within {seconds} s")
        await asyncio.sleep(0.01)
