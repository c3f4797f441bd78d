"""A `text/event-stream` answer as a plain ASGI app, for streams that stay open for hours.

Litestar's own Stream runs the body in an anyio task group beside a task that waits for the
client to leave: two tasks, a cancel scope, events and weak references per stream, 3.6 KB of an
idle stream's 32 (bench/run.py, tracemalloc). Here the body runs in the request's own task, and
one small task waits for the client to leave and then cancels it, as the floor's stream does.
A route handler returns it, annotated with this class, and Litestar calls it as the answer: the
app's `before_send` hooks and its response counting still see the head. The chunks after it go
to the send the app put in the scope under BODY_SEND, past those layers, which look at the head
only: in a broadcast to 10,000 streams each chunk went through five of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from litestar.types import Message, Receive, Scope, Send

# No caching or transforming on the way, and no buffering in a reverse proxy (nginx reads
# X-Accel-Buffering): each message must reach the browser when it is written.
HEADERS = {"Cache-Control": "no-cache, no-transform", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
_HEAD = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *((name.lower().encode(), value.encode()) for name, value in HEADERS.items()),
]
_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}
# The scope key of the send for an answer's body: the server's own, or what drops the body of a
# HEAD answer (tidings.app). Without one, the body goes the way the head went.
BODY_SEND = "tidings.body_send"


class EventStreamResponse:
    """Sends `body` as it comes. When the client leaves, the body is cancelled where it waits,
    so its `finally` runs (slots freed, streams counted closed) and the answer ends quietly;
    a cancellation from elsewhere (the server stopping) goes on as usual."""

    __slots__ = ("body",)

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _HEAD})
        send = scope.get(BODY_SEND, send)  # type: ignore[assignment]
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.ensure_future(_cancel_when_client_leaves(receive, task))
        try:
            async for chunk in self.body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send(_END)
        except asyncio.CancelledError:
            # Ours when the watcher saw the client leave and nobody else asked to cancel.
            if not watcher.done() or watcher.cancelled() or task.uncancel() > 0:
                raise
        finally:
            # No await from here to the return: a watcher woken now is cancelled before it runs,
            # so it cannot cancel the task after the answer.
            watcher.cancel()


async def _cancel_when_client_leaves(receive: Receive, task: asyncio.Task[None]) -> None:
    # The first message is the (empty) request body; the client leaving is http.disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()
