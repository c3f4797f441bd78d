"""A long-lived API client keeps streaming across access-token expiry by refreshing: the real
`eventsource` package with a custom fetch (tests/interop/eventsource_client.mjs, given a refresh
token) against
a server whose access tokens live ACCESS_TOKEN_SECONDS. Each stream ends when its token expires;
the library reconnects with Last-Event-ID, the client's fetch meets a 401, rotates its refresh
token, retries, and every notification arrives exactly once across the expiries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import DEFAULT_PASSWORD
from tests.interop.conftest import assert_no_server_errors, create_account
from tests.interop.test_eventsource_client import is_kind

ACCESS_TOKEN_SECONDS = 3
EXPIRIES = 2  # the stream must outlive at least this many access tokens
ANNOUNCE_EVERY = 0.6  # seconds


class RefreshingClient:
    """The admin's side, on the same refresh flow: a 401 means the access token expired."""

    def __init__(self, http: httpx.AsyncClient, tokens: dict[str, Any]) -> None:
        self.http = http
        self.token = tokens["token"]
        self.refresh_token = tokens["refresh_token"]

    async def post(self, path: str, json: dict[str, Any]) -> httpx.Response:
        response = await self.http.post(path, json=json, headers={"Authorization": f"Bearer {self.token}"})
        if response.status_code != 401:
            return response
        refreshed = await self.http.post("/api/v1/auth/refresh", json={"refresh_token": self.refresh_token})
        assert refreshed.status_code == 200, refreshed.text
        self.token, self.refresh_token = refreshed.json()["token"], refreshed.json()["refresh_token"]
        return await self.http.post(path, json=json, headers={"Authorization": f"Bearer {self.token}"})


async def log_in(http: httpx.AsyncClient, email: str) -> dict[str, Any]:
    response = await http.post("/api/v1/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["expires_in"] == ACCESS_TOKEN_SECONDS
    return body


async def test_eventsource_keeps_streaming_across_access_token_expiry_by_refreshing(
    live_servers, node_client, http_for, session: AsyncSession
) -> None:
    server = live_servers(ACCESS_TOKEN_SECONDS=str(ACCESS_TOKEN_SECONDS))
    log_start = server.log_path.stat().st_size
    http = http_for(server)
    admin_account = await create_account(session, http, admin=True)
    reader_account = await create_account(session, http)
    admin = RefreshingClient(http, await log_in(http, admin_account.email))
    reader = await log_in(http, reader_account.email)

    client = await node_client(
        "eventsource_client.mjs",
        server,
        reader["token"],
        max_seconds=60,
        env={"TIDINGS_REFRESH_TOKEN": reader["refresh_token"]},
    )
    await client.wait_for(is_kind("open"), "the stream to open")
    await client.wait_for(lambda line: line.get("type") == "notification_count", "the opening count")

    # Announce steadily until the client has refreshed EXPIRIES times and streamed again after
    # the last one, so notifications land on live streams and in the gaps between them.
    sent = 0
    started = time.monotonic()
    while len(client.matching(is_kind("refreshed"))) < EXPIRIES or sent < 12:
        assert time.monotonic() - started < 40, f"only {sent} sent in 40 s\n{client.transcript()}"
        sent += 1
        response = await admin.post("/api/v1/announcements", json={"title": f"Tiding {sent}", "body": ""})
        assert response.status_code == 202, response.text
        await asyncio.sleep(ANNOUNCE_EVERY)
    refreshes = len(client.matching(is_kind("refreshed")))
    opens_before = len(client.matching(is_kind("open")))
    await client.wait_for(is_kind("open"), "a stream opened after the last refresh", count=refreshes + 1, seconds=15)
    await client.wait_for(
        lambda line: line.get("type") == "new_notification" and line["data"]["seq"] == sent,
        f"seq {sent}, the last one",
        seconds=20,
    )

    received = client.matching(lambda line: line.get("type") == "new_notification")
    seqs = [line["data"]["seq"] for line in received]
    assert seqs == list(range(1, sent + 1)), f"not exactly once, in order: {seqs}\n{client.transcript()}"
    # (Fan-out jobs of consecutive announcements may run side by side, so titles need not follow seq.)
    assert sorted(line["data"]["title"] for line in received) == sorted(f"Tiding {n}" for n in range(1, sent + 1))
    assert [line["id"] for line in received] == [str(n) for n in range(1, sent + 1)]
    assert refreshes >= EXPIRIES and opens_before >= EXPIRIES
    assert all(line["expires_in"] == ACCESS_TOKEN_SECONDS for line in client.matching(is_kind("refreshed")))
    assert not client.matching(is_kind("refresh_failed")), client.transcript()
    assert not client.matching(lambda line: line.get("type") == "reset"), "continuity was provable: no reset"
    assert all(line["ready_state"] == 0 for line in client.matching(is_kind("error"))), "it must reconnect, not fail"
    # Every reconnection after an expiry resumed from the last id the library had seen.
    connects = client.matching(is_kind("connect"))
    assert any(line["last_event_id"] not in (None, "") for line in connects[1:]), client.transcript()
    assert_no_server_errors(server, log_start)
    print(
        f"\n[eventsource refresh] {sent} notifications over {time.monotonic() - started:.1f} s, "
        f"{refreshes} refreshes, {len(client.matching(is_kind('open')))} streams, each seq once"
    )
