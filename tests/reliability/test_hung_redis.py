"""A hung Redis (accepts connections, never answers) never stalls the web process.

The server's REDIS_URL points at a listener in this test that accepts TCP connections and
reads forever without replying. While one client keeps making requests that touch Redis (logins
check the shared limit, announcements record theirs and hand an outbox row to the broker),
other requests (the health check, a page, the JSON API, opening a stream) must keep answering.
Logins fail open; the announcements' outbox rows stay unmarked for the scheduler's sweeper.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import select

from tests.conftest import DEFAULT_PASSWORD
from tests.reliability.conftest import (
    WATCHED_LOGS,
    Account,
    bearer,
    clean_shutdown,
    log_tail,
    register,
    register_admin,
    server_env,
)
from tests.reliability.sse import Event, open_stream
from tests.services import LiveServer
from webapp.auth.middleware import ACCESS_COOKIE
from webapp.outbox.models import OutboxMessage

REDIS_TIMEOUT_SECONDS = 1.0
P99_LIMIT = 3.0  # seconds, for requests that do not need Redis
ANSWER_WITHIN = 10.0  # a request still unanswered after this counts as stalled
ROUNDS = 3  # logins and announcements made against the hung Redis


class SilentRedis:
    """Accepts connections and reads whatever is sent; never replies."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._swallow, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server:
            self._server.close()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * 0.99) - 1)]


async def timed(request: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until the request answered as expected; infinity if it stalled."""
    started = time.monotonic()
    try:
        ok = await asyncio.wait_for(request(), ANSWER_WITHIN)
    except TimeoutError:
        return math.inf
    assert ok, "a request answered, but not as expected"
    return time.monotonic() - started


async def test_a_hung_redis_never_stalls_pages_api_or_streams(database_url, session, tmp_path):
    silent = SilentRedis()
    redis_url = await silent.start()
    server = LiveServer(
        server_env(database_url, REDIS_URL=redis_url, REDIS_TIMEOUT_SECONDS=str(REDIS_TIMEOUT_SECONDS)),
        tmp_path / "server.log",
    )
    WATCHED_LOGS.append(server.log_path)
    await asyncio.to_thread(server.start)  # this loop keeps serving the silent listener meanwhile
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30) as busy,
            httpx.AsyncClient(base_url=server.url, timeout=30) as other,
        ):
            admin = await register_admin(busy, session)
            member = await register(other)
            assert (await other.get("/api/v1/me", headers=bearer(member))).status_code == 200
            assert silent.connections > 0, "the server never tried the hung Redis"

            redis_latencies: dict[str, list[float]] = {"login": [], "failed login": [], "announce": []}

            async def touch_redis() -> None:
                for round_ in range(ROUNDS):
                    started = time.monotonic()
                    response = await busy.post(
                        "/api/v1/auth/login", json={"email": member.email, "password": DEFAULT_PASSWORD}
                    )
                    assert response.status_code == 200, response.text  # the limit fails open
                    redis_latencies["login"].append(time.monotonic() - started)
                    started = time.monotonic()
                    response = await busy.post("/api/v1/auth/login", json={"email": member.email, "password": "wrong"})
                    assert response.status_code == 401, response.text  # the failure is recorded, or logged
                    redis_latencies["failed login"].append(time.monotonic() - started)
                    started = time.monotonic()
                    response = await busy.post(
                        "/api/v1/announcements", json={"title": f"during the hang {round_}"}, headers=bearer(admin)
                    )
                    assert response.status_code == 202, response.text
                    redis_latencies["announce"].append(time.monotonic() - started)

            measured = measured_requests(other, member)
            latencies: dict[str, list[float]] = {name: [] for name in measured}
            load = asyncio.create_task(touch_redis())
            while not load.done():
                for name, request in measured.items():
                    latencies[name].append(await timed(request))
            await load  # its own assertions

            # Each announcement's hand-over to the broker has given up (logged) by now.
            deadline = time.monotonic() + 30
            while log_tail(server, 100_000).count("could not enqueue outbox message") < ROUNDS:
                assert time.monotonic() < deadline, f"no failed hand-over logged:\n{log_tail(server)}"
                await asyncio.sleep(0.1)
            announcements = select(OutboxMessage).where(OutboxMessage.actor_name == "fan_out_announcement")
            rows = list(await session.scalars(announcements))
            assert len(rows) == ROUNDS
            assert [row.enqueued_at for row in rows] == [None] * ROUNDS, "a row was marked though never sent"
            assert (await other.get("/healthz")).status_code == 200
    finally:
        with clean_shutdown([server.log_path]):
            await asyncio.to_thread(server.stop)
        await silent.stop()

    everything = [value for values in latencies.values() for value in values]
    print(
        f"\n[hung redis] {len(everything)} requests beside {ROUNDS} rounds of login, failed login, announcement; "
        + "; ".join(f"{name} p99 {p99(values) * 1000:.0f} ms (n={len(values)})" for name, values in latencies.items())
        + f"; all p99 {p99(everything) * 1000:.0f} ms, max {max(everything) * 1000:.0f} ms"
        + "".join(
            f"; {name} " + ", ".join(f"{v * 1000:.0f}" for v in values) + " ms"
            for name, values in redis_latencies.items()
        )
    )
    stalled = {name: sum(v == math.inf for v in values) for name, values in latencies.items()}
    assert not any(stalled.values()), f"requests unanswered after {ANSWER_WITHIN} s: {stalled}"
    assert p99(everything) < P99_LIMIT, f"p99 {p99(everything):.2f} s"


def measured_requests(http: httpx.AsyncClient, member: Account) -> dict[str, Callable[[], Awaitable[bool]]]:
    async def healthz() -> bool:
        return (await http.get("/healthz")).status_code == 200

    async def page() -> bool:
        response = await http.get("/notifications", headers={"Cookie": f"{ACCESS_COOKIE}={member.token}"})
        return response.status_code == 200 and "<html" in response.text.lower()

    async def unread_count() -> bool:
        response = await http.get("/api/v1/notifications/unread_count", headers=bearer(member))
        return response.status_code == 200 and "seq" in response.json()

    async def stream() -> bool:
        async with open_stream(http, member.token, last_event_id=0) as opened:
            first = await opened.next_event(ANSWER_WITHIN)
            return opened.status == 200 and isinstance(first, Event) and first.event == "notification_count"

    return {"healthz": healthz, "page": page, "unread_count": unread_count, "stream": stream}
