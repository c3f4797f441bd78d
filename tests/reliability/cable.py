"""A small ActionCable-protocol client over `websockets`, for the reliability tests of WS /cable.

It behaves as the `@rails/actioncable` consumer does where the tests need it: it answers nothing
to pings, subscribes to NotificationsChannel (optionally with `last_seq`, to resume), and on a
`disconnect` frame with `reconnect: true` expects the server to close the socket. Frames are read
by a pump task into a queue only while the client is not stalled; a stalled client reads nothing,
and with a small receive buffer (set before connecting) the server soon cannot send it anything.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

PROTOCOL = "actioncable-v1-json"
CHANNEL = "NotificationsChannel"


def identifier(last_seq: int | None = None) -> str:
    params: dict[str, Any] = {"channel": CHANNEL}
    if last_seq is not None:
        params["last_seq"] = last_seq
    return json.dumps(params, separators=(",", ":"))


class CableClient:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()  # None: the socket closed

    @classmethod
    async def open(cls, base_url: str, token: str, *, rcvbuf: int | None = None, max_queue: int = 16) -> CableClient:
        parts = urlsplit(base_url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connecting, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname or "127.0.0.1", parts.port or 80))
        connection = await connect(
            f"ws://{parts.hostname}:{parts.port}/cable?token={token}",
            sock=sock,
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            max_queue=max_queue,
            ping_interval=None,
            compression=None,  # the payloads the tests send must take their real size on the wire
            proxy=None,
            open_timeout=15,
        )
        return cls(connection)

    async def frame(self, within: float) -> dict[str, Any] | None:
        """The next frame other than a ping; None once the server has closed the socket."""
        deadline = time.monotonic() + within
        while True:
            try:
                raw = await asyncio.wait_for(self.connection.recv(), deadline - time.monotonic())
            except ConnectionClosed:
                return None
            frame = json.loads(raw)
            if frame.get("type") != "ping":
                return frame

    async def expect(self, kind: str, within: float = 10.0) -> dict[str, Any]:
        frame = await self.frame(within)
        assert frame is not None and frame.get("type") == kind, f"expected {kind!r}, got {frame!r}"
        return frame

    async def subscribe(self, last_seq: int | None = None) -> None:
        await self.connection.send(json.dumps({"command": "subscribe", "identifier": identifier(last_seq)}))
        frame = await self.frame(10)
        assert frame is not None and frame.get("type") == "confirm_subscription", frame

    async def message(self, within: float) -> dict[str, Any] | None:
        """The next channel message (the `message` of a frame that has an identifier), or the
        frame itself when it is a control frame (disconnect); None when the socket closed."""
        frame = await self.frame(within)
        if frame is None:
            return None
        return frame["message"] if "identifier" in frame and "message" in frame else frame

    async def until_ping(self, within: float) -> list[dict[str, Any]]:
        """The channel messages that arrive before the next ping: with nothing happening, what
        the server still had to say."""
        deadline = time.monotonic() + within
        messages: list[dict[str, Any]] = []
        while True:
            raw = await asyncio.wait_for(self.connection.recv(), deadline - time.monotonic())
            frame = json.loads(raw)
            if frame.get("type") == "ping":
                return messages
            messages.append(frame.get("message", frame))

    async def close(self) -> None:
        await self.connection.close()
