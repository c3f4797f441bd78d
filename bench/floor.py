"""The floor: the least an ASGI app on the same server can do, measured beside Tidings.

`GET /hello` answers a tiny JSON body; `GET /stream` is Server-Sent Events: one event at once,
then a heartbeat comment every HEARTBEAT seconds. Served by uvicorn with uvloop and httptools,
as `tidings serve` is.

With `--litestar`, the same `/hello` as a one-route Litestar app without middleware: the least the
framework Tidings is built on costs per request, so a figure can be read against both.

    .venv/bin/python -m bench.floor --port 8100 [--litestar]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

HEARTBEAT = 15.0
HELLO = b'{"hello":"world"}'
JSON = [(b"content-type", b"application/json"), (b"content-length", str(len(HELLO)).encode())]
NOT_FOUND = [(b"content-type", b"application/json"), (b"content-length", b"2")]
SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/hello":
        await send({"type": "http.response.start", "status": 200, "headers": JSON})
        await send({"type": "http.response.body", "body": HELLO})
    elif scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": SSE})
        await send({"type": "http.response.body", "body": b"event: hello\ndata: {}\n\n", "more_body": True})
        await receive()  # the (empty) request body; the next message is the client leaving
        disconnected = asyncio.ensure_future(receive())
        while not disconnected.done():
            await asyncio.wait([disconnected], timeout=HEARTBEAT)
            if not disconnected.done():
                await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": NOT_FOUND})
        await send({"type": "http.response.body", "body": b"{}"})


def litestar_app() -> Any:
    from litestar import Litestar, get

    @get("/hello", cache_control=None)
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return Litestar([hello], debug=False)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--litestar", action="store_true", help="serve /hello through a bare Litestar app")
    args = parser.parse_args()
    served = litestar_app() if args.litestar else app
    uvicorn.run(served, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning")


if __name__ == "__main__":
    main()
