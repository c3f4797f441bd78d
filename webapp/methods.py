"""HEAD wherever GET works, and a 405's `Allow` header that says so.

Litestar routes HEAD only to handlers declared for it, and refuses to declare one handler for GET
and HEAD together (a HEAD answer has no body). So a HEAD request is answered by the GET handler with
the body dropped on the way out: same status, same headers (Content-Length included), no body.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import HttpMethod
from litestar.types import HTTPScope, Message, Scope, Send

HTTP_METHODS = frozenset(method.value for method in HttpMethod)


def as_get(scope: HTTPScope) -> HTTPScope:
    """The same request as a GET, on a copy: the server keeps reading its own scope, and knows it
    answers a HEAD (a GET's Content-Length with no body is right for HEAD, wrong for GET)."""
    return {**scope, "method": "GET"}


def without_body(send: Send) -> Send:
    """Passes the answer's start through and ends it with an empty body at the first body message.
    A stream ends there too: the server then reports the client gone, which stops its generator."""
    finished = False

    async def send_headers_only(message: Message) -> None:
        nonlocal finished
        if message["type"] == "http.response.body":
            if finished:
                return
            finished = True
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return send_headers_only


async def list_head_with_get(message: Message, scope: Scope) -> None:
    """`before_send` hook: an `Allow` header (405, OPTIONS) lists HEAD wherever it lists GET, and
    only HTTP methods (a WebSocket route's 405 would otherwise say "websocket")."""
    if message["type"] != "http.response.start":
        return
    # Most answers have no Allow: a plain scan is cheaper than the header view, on every answer.
    if not any(name.lower() == b"allow" for name, _ in message.get("headers", ())):
        return
    headers = MutableScopeHeaders.from_message(message)
    allow = headers.get("allow")
    if allow is None:
        return
    methods = {method.strip().upper() for method in allow.split(",")} & HTTP_METHODS
    if "GET" in methods:
        methods.add("HEAD")
    headers["allow"] = ", ".join(sorted(methods))
