"""Server logs: JSON lines with LOG_FORMAT=json, a request id on every line of a request (taken
from a sane X-Request-ID or made up, and sent back), the user id once known, the message id on
a job's lines, and never a token, password, cookie or query string, even at DEBUG."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import DEFAULT_PASSWORD
from tests.reliability.conftest import announce, register_admin, server_env
from tests.reliability.sse import open_stream
from tests.services import LiveServer
from webapp.auth.middleware import ACCESS_COOKIE, REFRESH_COOKIE


@pytest.fixture
def debug_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(server_env(database_url, LOG_LEVEL="DEBUG", LOG_FORMAT="json"), tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    """Every line the server logged; each must be one JSON object."""
    parsed = []
    for raw in path.read_text().splitlines():
        assert raw.startswith("{"), f"not a JSON line: {raw!r}"
        parsed.append(json.loads(raw))
    return parsed


async def test_json_lines_carry_request_and_user_ids_and_no_secret(debug_server: LiveServer, session) -> None:
    secrets: list[str] = [DEFAULT_PASSWORD]
    async with httpx.AsyncClient(base_url=debug_server.url, timeout=30) as http:
        admin = await register_admin(http, session)
        secrets.append(admin.token)
        login = await http.post("/api/v1/auth/login", json={"email": admin.email, "password": DEFAULT_PASSWORD})
        assert login.status_code == 200, login.text
        tokens = login.json()
        secrets += [tokens["token"], tokens["refresh_token"]]

        mine = await http.get(
            "/api/v1/notifications/unread_count",
            headers={"Authorization": f"Bearer {tokens['token']}", "X-Request-ID": "req-abc.123"},
        )
        assert mine.status_code == 200
        assert mine.headers["x-request-id"] == "req-abc.123"
        made_up = await http.get("/health/live", headers={"X-Request-ID": "no good\tid " + "x" * 200})
        assert made_up.headers["x-request-id"] and made_up.headers["x-request-id"] != "no good\tid " + "x" * 200
        assert (await http.get("/health/live")).headers["x-request-id"]

        # a page with the session cookies, a refresh through the API
        cookie = f"{ACCESS_COOKIE}={tokens['token']}; {REFRESH_COOKIE}={tokens['refresh_token']}"
        page = await http.get("/", headers={"Cookie": cookie})
        assert page.status_code == 200
        refreshed = await http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        secrets += [refreshed.json()["token"], refreshed.json()["refresh_token"]]

        # query strings: a stream and a missing page carrying secrets in the URL
        async with open_stream(http, admin.token, query_last_event_id=0) as stream:
            assert stream.status == 200
        assert (await http.get(f"/no-such-page?password={DEFAULT_PASSWORD}&token={admin.token}")).status_code == 404

        # the cable handshake with ?token=
        async with connect(
            f"ws://127.0.0.1:{debug_server.port}/cable?token={admin.token}",
            subprotocols=["actioncable-v1-json"],  # type: ignore[list-item]
            origin=debug_server.url,  # type: ignore[arg-type]
        ) as socket:
            assert json.loads(await socket.recv())["type"] == "welcome"

        await announce(http, admin, "logged job")  # a fan-out job runs in the embedded worker
        await _wait_for_job_line(debug_server.log_path)

    debug_server.stop()  # everything flushed
    text = debug_server.log_path.read_text()
    for secret in secrets:
        assert secret not in text
    assert "no-such-page?" not in text and "last_event_id=" not in text and "token=" not in text

    logged = lines(debug_server.log_path)
    tagged = [line for line in logged if line.get("request_id") == "req-abc.123"]
    assert tagged, "no line of the request with X-Request-ID"
    assert all(line.get("user_id") == admin.id for line in tagged)
    access = [line for line in logged if line["logger"] == "uvicorn.access"]
    assert access and all(line.get("request_id") for line in access)
    jobs = [line for line in logged if line["logger"] == "tidings.jobs" and line.get("message_id")]
    assert any("fan_out_announcement" in line["message"] for line in jobs)


async def _wait_for_job_line(path: Path, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while "job fan_out_announcement finished" not in await asyncio.to_thread(path.read_text):
        assert time.monotonic() < deadline, "no job line"
        await asyncio.sleep(0.2)


def test_text_format_in_development_is_readable_and_carries_the_request_id(database_url: str, tmp_path: Path) -> None:
    server = LiveServer(server_env(database_url, LOG_LEVEL="INFO"), tmp_path / "server.log")
    server.start()
    try:
        response = httpx.get(f"{server.url}/health/live", headers={"X-Request-ID": "text-req-1"})
        assert response.headers["x-request-id"] == "text-req-1"
    finally:
        server.stop()
    text = server.log_path.read_text()
    [line] = [line for line in text.splitlines() if "text-req-1" in line]
    assert not line.startswith("{") and "/health/live" in line
