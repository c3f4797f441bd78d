"""EventStreamResponse: the body runs in the request's task and ends when the client leaves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.asgi import Client, until
from webapp.sse_response import BODY_SEND, EventStreamResponse


class Body:
    """A body that sends `first`, then waits for `more` until released; records that it ended."""

    def __init__(self, first: bytes, wait: bool = True) -> None:
        self.first = first
        self.wait = wait
        self.released = asyncio.Event()
        self.ended = False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            yield self.first
            if self.wait:
                await self.released.wait()
                yield b"later\n\n"
        finally:
            self.ended = True


async def answering_and_waiting() -> tuple[Client, Body, asyncio.Future[None]]:
    """An answer whose body sent its first chunk and now waits for more."""
    client, body = Client(), Body(b"first\n\n")
    answer = asyncio.ensure_future(
        EventStreamResponse(body.chunks())({"type": "http"}, client.receive, client.send)  # type: ignore[arg-type]
    )
    await until(lambda: len(client.bodies()) == 1)
    return client, body, answer


async def test_it_sends_the_event_stream_head_then_each_chunk_then_the_end() -> None:
    client, body = Client(), Body(b": connected\n\n", wait=False)
    await EventStreamResponse(body.chunks())({"type": "http"}, client.receive, client.send)  # type: ignore[arg-type]

    start = client.sent[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"] == b"no-cache, no-transform"
    assert headers[b"x-accel-buffering"] == b"no"
    assert client.bodies() == [(b": connected\n\n", True), (b"", False)]
    assert body.ended


async def test_a_client_leaving_ends_the_waiting_body_quietly() -> None:
    client, body, answer = await answering_and_waiting()
    client.leave()
    await asyncio.wait_for(answer, 1)  # returns, not cancelled

    assert body.ended
    assert client.bodies() == [(b"first\n\n", True)]  # nothing after the client left, not even the end
    assert not answer.cancelled()


async def test_a_cancellation_from_elsewhere_goes_on() -> None:
    """The server stopping cancels the request's task: that is not swallowed as a client leaving."""
    client, body, answer = await answering_and_waiting()
    answer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answer
    assert body.ended


async def test_a_client_leaving_after_the_body_ended_cancels_nothing_later() -> None:
    """The request's task goes on after the answer (the server's own bookkeeping): a departure
    seen late must not cancel it there."""
    client, body = Client(), Body(b"only\n\n", wait=False)

    async def request() -> str:
        await EventStreamResponse(body.chunks())({"type": "http"}, client.receive, client.send)  # type: ignore[arg-type]
        client.leave()
        await asyncio.sleep(0.05)  # the task's later awaits
        return "finished"

    assert await asyncio.wait_for(request(), 1) == "finished"


async def test_chunks_go_to_the_servers_send_past_the_apps_wrappers() -> None:
    """The app's wrappers of `send` (request id, response counting, security headers) look at the
    head only: each chunk of a broadcast to thousands went through five of them for nothing."""
    app, server = Client(), Client()
    body = Body(b"a\n\n", wait=False)
    scope = {"type": "http", BODY_SEND: server.send}
    await EventStreamResponse(body.chunks())(scope, app.receive, app.send)  # type: ignore[arg-type]

    assert [m["type"] for m in app.sent] == ["http.response.start"]
    assert server.bodies() == [(b"a\n\n", True), (b"", False)]
