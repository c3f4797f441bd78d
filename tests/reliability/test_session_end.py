"""A session that ends (logout, or reuse of a rotated refresh token) ends everything of it at
once, on real servers: its open SSE streams (JSON and HTML) and `/cable` connections close, and
its access tokens are refused by the API and both streams — in the process that ended it, in a
second web process (through the Redis doorbell), and, when a ring is lost, within the periodic
resync. Other sessions of the same user carry on."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET
from tests.reliability.cable import CableClient
from tests.reliability.conftest import (
    RESYNC_SECONDS,
    RUNNING,
    WATCHED_LOGS,
    clean_shutdown,
    server_env,
    start_all,
    stop_all,
)
from tests.reliability.sse import PAGE_STREAM, Closed, EventStream, open_stream
from tests.services import LiveServer, scaled_env
from webapp.auth.models import RefreshToken
from webapp.auth.tokens import hash_refresh_token
from webapp.db import utcnow

CLOSE_WITHIN = 1.0  # seconds from sending the request that ends the session to every connection closed
_emails = iter(range(1, 1_000_000))


async def sign_up(http: httpx.AsyncClient) -> str:
    email = f"session-end{next(_emails)}-{time.monotonic_ns()}@example.com"
    response = await http.post(
        "/api/v1/auth/register", json={"email": email, "password": DEFAULT_PASSWORD, "name": "Ender"}
    )
    assert response.status_code == 201, response.text
    return email


async def log_in(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await http.post("/api/v1/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def log_out(http: httpx.AsyncClient, token: str) -> float:
    """Logs the session out; returns when the request was sent (what closing times count from)."""
    sent = time.monotonic()
    response = await http.post("/api/v1/auth/logout", headers=bearer(token))
    assert response.status_code == 204, response.text
    return sent


async def subscribed_cable(base_url: str, token: str) -> CableClient:
    """A `/cable` connection subscribed to NotificationsChannel, past its opening count."""
    cable = await CableClient.open(base_url, token)
    await cable.expect("welcome")
    await cable.subscribe()
    opening = await cable.message(within=5)
    assert opening is not None and opening["type"] == "notification_count", opening
    return cable


async def opened(stream: EventStream) -> EventStream:
    assert stream.status == 200, stream.body
    await stream.until_heartbeat(within=5)  # the opening is done and the stream is live
    return stream


async def closed_after(stream: EventStream, since: float) -> float:
    closed = await stream.wait_closed(within=10)
    assert isinstance(closed, Closed)
    assert stream.closed_at is not None
    return stream.closed_at - since


async def cable_closed_after(cable: CableClient, since: float) -> float:
    frame = await cable.frame(within=10)
    assert frame == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}, frame
    assert await cable.frame(within=10) is None  # then the socket closes
    return time.monotonic() - since


async def assert_refused_everywhere(http: httpx.AsyncClient, server: LiveServer, token: str) -> None:
    assert (await http.get("/api/v1/me", headers=bearer(token))).status_code == 401
    for path in ("/api/v1/notifications/stream", PAGE_STREAM):
        async with open_stream(http, token, path=path) as stream:
            assert stream.status == 401, path
            assert stream.json()["error"]["code"] == "unauthorized"
    cable = await CableClient.open(server.url, token)
    try:
        assert await cable.frame(within=10) == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
    finally:
        await cable.close()


def report(what: str, figures: dict[str, float]) -> None:
    shown = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in figures.items())
    print(f"\n[session end] {what}: {shown}")


async def test_logout_closes_the_sessions_streams_and_cable_at_once_and_refuses_its_token(
    http: httpx.AsyncClient, server: LiveServer
) -> None:
    email = await sign_up(http)
    other = await log_in(http, email)  # another device of the same user
    mine = await log_in(http, email)
    async with (
        open_stream(http, mine["token"]) as api_stream,
        open_stream(http, mine["token"], path=PAGE_STREAM) as page_stream,
    ):
        await opened(api_stream)
        await opened(page_stream)
        cable = await subscribed_cable(server.url, mine["token"])
        idle_cable = await CableClient.open(server.url, mine["token"])  # connected, never subscribed
        try:
            await idle_cable.expect("welcome")
            ended = await log_out(http, mine["token"])
            figures = {
                "api stream": await closed_after(api_stream, ended),
                "page stream": await closed_after(page_stream, ended),
                "cable": await cable_closed_after(cable, ended),
                "idle cable": await cable_closed_after(idle_cable, ended),
            }
        finally:
            await cable.close()
            await idle_cable.close()
    report("logout → closed (one process)", figures)
    assert max(figures.values()) <= CLOSE_WITHIN, figures

    await assert_refused_everywhere(http, server, mine["token"])
    assert (await http.post("/api/v1/auth/refresh", json={"refresh_token": mine["refresh_token"]})).status_code == 401
    # The other session of the same user is untouched.
    assert (await http.get("/api/v1/me", headers=bearer(other["token"]))).status_code == 200
    async with open_stream(http, other["token"]) as still_open:
        await opened(still_open)


async def test_reusing_a_rotated_refresh_token_closes_the_sessions_streams(
    http: httpx.AsyncClient, server: LiveServer
) -> None:
    email = await sign_up(http)
    first = await log_in(http, email)
    rotated = await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    current = rotated.json()
    async with open_stream(http, current["token"]) as stream:
        await opened(stream)
        ended = time.monotonic()
        reuse = await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert reuse.status_code == 401
        assert reuse.json()["error"]["code"] == "invalid_refresh_token"
        took = await closed_after(stream, ended)
    report("refresh-token reuse → stream closed", {"api stream": took})
    assert took <= CLOSE_WITHIN
    await assert_refused_everywhere(http, server, current["token"])


async def test_a_session_ended_without_a_ring_is_noticed_by_the_periodic_resync(
    resync_server: LiveServer, session: AsyncSession
) -> None:
    """The doorbell is only a hint: a revocation whose ring was lost (here: made straight in the
    database) still closes the session's streams and refuses its token within the resync period."""
    async with httpx.AsyncClient(base_url=resync_server.url, timeout=30) as http:
        email = await sign_up(http)
        tokens = await log_in(http, email)
        async with open_stream(http, tokens["token"]) as stream:
            await opened(stream)
            ended = time.monotonic()
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == hash_refresh_token(tokens["refresh_token"]))
                .values(revoked_at=utcnow())
            )
            await session.commit()
            took = await closed_after(stream, ended)
        report("revoked without a ring → stream closed", {"api stream": took})
        assert took <= RESYNC_SECONDS + 2
        await assert_refused_everywhere(http, resync_server, tokens["token"])


@pytest.fixture(scope="module")
def web_pair(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two web processes of one scaled deployment (shared database and Redis doorbell)."""
    scaled = scaled_env(database_url, TEST_SECRET)
    folder = tmp_path_factory.mktemp("session-end-pair")
    a = LiveServer(server_env(database_url, **scaled), folder / "a.log")
    b = LiveServer(server_env(database_url, **scaled), folder / "b.log")
    a.env["ALLOWED_ORIGINS"] = b.env["ALLOWED_ORIGINS"] = f"{a.url},{b.url}"
    WATCHED_LOGS.extend([a.log_path, b.log_path])
    start_all([a, b])
    RUNNING.extend([a, b])
    try:
        yield a, b
    finally:
        with clean_shutdown([a.log_path, b.log_path]):
            stop_all([a, b])
        for process in (a, b):
            RUNNING.remove(process)


async def test_logout_on_one_web_process_closes_the_sessions_connections_on_another(web_pair) -> None:
    a, b = web_pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        email = await sign_up(on_a)
        tokens = await log_in(on_a, email)
        async with open_stream(on_b, tokens["token"]) as stream:
            await opened(stream)
            cable = await subscribed_cable(b.url, tokens["token"])
            try:
                ended = await log_out(on_a, tokens["token"])
                figures = {
                    "api stream on B": await closed_after(stream, ended),
                    "cable on B": await cable_closed_after(cable, ended),
                }
            finally:
                await cable.close()
        report("logout on A → closed on B (Redis doorbell)", figures)
        assert max(figures.values()) <= CLOSE_WITHIN, figures
        await assert_refused_everywhere(on_b, b, tokens["token"])
        await assert_refused_everywhere(on_a, a, tokens["token"])
