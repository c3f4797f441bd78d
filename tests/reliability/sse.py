"""A small Server-Sent Events client for the reliability tests.

`SSEParser` follows the parsing rules of the HTML living standard (lines end in CRLF, LF or CR,
which may be split across reads; `data` lines join with "\\n"; an event is dispatched on a blank
line; comments start with ":"; `id` sets the last event id). `ChunkedDecoder` undoes HTTP/1.1
chunked transfer coding for the raw-socket client. `open_stream` wraps an httpx streaming
response: a pump task parses what arrives into a queue, so a test can wait for the next item
with a deadline without breaking the connection when the deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

API_STREAM = "/api/v1/notifications/stream"
PAGE_STREAM = "/notifications/stream"
_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None  # the id field of this event, if it had one
    last_event_id: str  # the stream's last event id once this event is dispatched
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True)
class Comment:
    text: str


@dataclass(frozen=True)
class Closed:
    """The response body ended (the server closed the stream), or the connection broke."""

    error: str | None = None


Item = Event | Comment | Closed


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() when the bytes carrying it were read
    item: Item


class SSEParser:
    def __init__(self) -> None:
        self._pending = b""
        self._first = True
        self._event = ""
        self._data: list[str] = []
        self._id_buffer = ""
        self._has_id = False
        self._retry: int | None = None
        self.last_event_id = ""

    def feed(self, chunk: bytes) -> list[Event | Comment]:
        buffer = self._pending + chunk
        if self._first and buffer:
            if buffer.startswith(b"\xef\xbb\xbf"):
                buffer = buffer[3:]
            elif len(buffer) < 3 and b"\xef\xbb\xbf".startswith(buffer):
                self._pending = buffer
                return []
            self._first = False
        items: list[Event | Comment] = []
        start = 0
        for end_of_line in _EOL.finditer(buffer):
            if end_of_line.group() == b"\r" and end_of_line.end() == len(buffer):
                break  # maybe the first half of a CRLF whose LF comes with the next read
            items.extend(self._line(buffer[start : end_of_line.start()]))
            start = end_of_line.end()
        self._pending = buffer[start:]
        return items

    def feed_eof(self) -> list[Event | Comment]:
        """At the end of the body, a lone trailing CR ends its line; an unterminated event is dropped."""
        if self._pending.endswith(b"\r"):
            items = self._line(self._pending[:-1])
            self._pending = b""
            return items
        self._pending = b""
        return []

    def _line(self, raw: bytes) -> list[Event | Comment]:
        line = raw.decode("utf-8", errors="replace")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return [Comment(line[1:].removeprefix(" "))]
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\x00" not in value:
                self._id_buffer = value
                self._has_id = True
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        return []

    def _dispatch(self) -> list[Event | Comment]:
        event_id = self._id_buffer if self._has_id else None
        self.last_event_id = self._id_buffer
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._has_id, self._retry = [], "", False, None
        if not data:
            return []
        return [Event(event or "message", "\n".join(data), event_id, self.last_event_id, retry)]


class ChunkedDecoder:
    """Incremental decoder of `Transfer-Encoding: chunked` bodies (no trailers expected)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._remaining = 0  # bytes of chunk data still to come
        self._need_crlf = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        while not self.done:
            if self._remaining:
                take = self._buffer[: self._remaining]
                out += take
                self._buffer = self._buffer[len(take) :]
                self._remaining -= len(take)
                if self._remaining:
                    break
                self._need_crlf = True
            if self._need_crlf:
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise ValueError(f"bad chunk terminator {self._buffer[:2]!r}")
                self._buffer = self._buffer[2:]
                self._need_crlf = False
            end = self._buffer.find(b"\r\n")
            if end < 0:
                break
            size = int(self._buffer[:end].split(b";")[0], 16)
            self._buffer = self._buffer[end + 2 :]
            if size == 0:
                self.done = True  # the last chunk: the body is complete
                break
            self._remaining = size
        return bytes(out)


@dataclass
class EventStream:
    """One streaming response. For a 200 a pump task feeds parsed items into `queue`."""

    response: httpx.Response
    parser: SSEParser = field(default_factory=SSEParser)
    queue: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    body: bytes = b""
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    _pump: asyncio.Task[None] | None = None

    @property
    def status(self) -> int:
        return self.response.status_code

    def json(self) -> Any:
        return json.loads(self.body)

    def start(self) -> None:
        self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        error: str | None = None
        try:
            async for chunk in self.response.aiter_raw():
                now = time.monotonic()
                for item in self.parser.feed(chunk):
                    self.queue.put_nowait(Received(now, item))
            for item in self.parser.feed_eof():
                self.queue.put_nowait(Received(time.monotonic(), item))
        except httpx.HTTPError as exc:  # a broken connection ends the stream too
            error = f"{type(exc).__name__}: {exc}"
        self.closed_at = time.monotonic()
        self.queue.put_nowait(Received(self.closed_at, Closed(error)))

    async def next(self, within: float) -> Received:
        """The next item; TimeoutError if none arrives within `within` seconds."""
        return await asyncio.wait_for(self.queue.get(), max(within, 0.0))

    async def next_event(self, within: float) -> Event | Closed:
        """The next event or the end of the stream, skipping comments, within `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            received = await self.next(deadline - time.monotonic())
            if not isinstance(received.item, Comment):
                return received.item

    async def notifications(self, count: int, within: float) -> list[Event]:
        """Exactly the next `count` `new_notification` events (other events are skipped; a reset
        or the end of the stream fails the caller's expectation with an AssertionError)."""
        deadline = time.monotonic() + within
        got: list[Event] = []
        while len(got) < count:
            try:
                item = await self.next_event(deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError(
                    f"only {len(got)} of {count} notifications within {within} s: {[e.id for e in got]}"
                ) from None
            assert not isinstance(item, Closed), f"stream ended after {len(got)} of {count} notifications: {item}"
            assert item.event != "reset", f"unexpected reset {item.data} after {[e.id for e in got]}"
            if item.event == "new_notification":
                got.append(item)
        return got

    async def until_heartbeat(self, within: float) -> list[Event]:
        """The events that arrive before the next `: keep-alive` comment: with nothing happening,
        what the server had to say. AssertionError if no heartbeat comes or the stream ends."""
        deadline = time.monotonic() + within
        events: list[Event] = []
        while True:
            try:
                item = (await self.next(deadline - time.monotonic())).item
            except TimeoutError:
                raise AssertionError(f"no keep-alive within {within} s; events so far: {events}") from None
            assert not isinstance(item, Closed), f"stream ended before a keep-alive: {item}; events: {events}"
            if isinstance(item, Comment):
                if item.text == "keep-alive":
                    return events
            else:
                events.append(item)

    async def wait_closed(self, within: float) -> Closed:
        """Reads (and drops) everything until the stream ends; TimeoutError if it does not."""
        deadline = time.monotonic() + within
        while True:
            received = await self.next(deadline - time.monotonic())
            if isinstance(received.item, Closed):
                return received.item

    async def aclose(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump


def stream_headers(
    token: str | None, last_event_id: str | int | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    headers = {"Accept": "text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    headers.update(extra or {})
    return headers


@contextlib.asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient,
    token: str | None,
    *,
    last_event_id: str | int | None = None,
    query_last_event_id: str | int | None = None,
    path: str = API_STREAM,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[EventStream]:
    """Opens a stream. A 200 is pumped in the background; any other answer has its body read."""
    params = {"last_event_id": str(query_last_event_id)} if query_last_event_id is not None else None
    timeout = httpx.Timeout(15.0, read=None)  # the tests put their own deadlines on reads
    async with http.stream(
        "GET", path, headers=stream_headers(token, last_event_id, headers), params=params, timeout=timeout
    ) as response:
        stream = EventStream(response)
        if response.status_code == 200:
            stream.start()
        else:
            stream.body = await response.aread()
        try:
            yield stream
        finally:
            await stream.aclose()


class RawStream:
    """A stream read through a bare socket, for tests that need to control the receive buffer
    and when (if at all) the client reads. Nothing is read unless a `read_*` method is called."""

    def __init__(self, host: str, port: int, rcvbuf: int | None = None, mss: int | None = None) -> None:
        self.host, self.port, self.rcvbuf, self.mss = host, port, rcvbuf, mss
        self.sock: socket.socket | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.parser = SSEParser()
        self.chunks = ChunkedDecoder()
        self.eof = False  # the server closed the connection or finished the body
        self.bytes_read = 0
        self._head = b""

    async def open(self, path: str, headers: dict[str, str], within: float = 15.0) -> list[Event | Comment]:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:  # before connect, so the advertised window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        if self.mss is not None:  # the segment size the server may send us, as on a real network
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, self.mss)
        sock.setblocking(False)
        self.sock = sock
        await asyncio.wait_for(loop.sock_connect(sock, (self.host, self.port)), within)
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        await asyncio.wait_for(loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode()), within)
        deadline = time.monotonic() + within
        while b"\r\n\r\n" not in self._head:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), deadline - time.monotonic())
            if not data:
                raise ConnectionError(f"connection closed before the response head: {self._head!r}")
            self._head += data
        head, _, rest = self._head.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        return self._body(rest)

    def _body(self, data: bytes) -> list[Event | Comment]:
        self.bytes_read += len(data)
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = self.chunks.feed(data)
            if self.chunks.done:
                self.eof = True
        return self.parser.feed(data)

    async def read(self, within: float) -> list[Event | Comment]:
        """What the next receive brings (maybe nothing yet); sets `eof` at the end of the stream."""
        assert self.sock is not None
        if self.eof:
            return []
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 65536), within)
        if not data:
            self.eof = True
            return self.parser.feed_eof()
        return self._body(data)

    async def read_until_eof(self, within: float) -> list[Event | Comment]:
        """Everything up to the end of the stream; TimeoutError if it has not ended by then."""
        deadline = time.monotonic() + within
        items: list[Event | Comment] = []
        while not self.eof:
            items += await self.read(deadline - time.monotonic())
        return items

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
