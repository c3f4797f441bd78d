"""Security of the real-time endpoints against a real server: WS /cable (ActionCable protocol),
the SSE streams /api/v1/notifications/stream (JSON) and /notifications/stream (HTML), and the
notification routes they share an inbox with."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import TEST_SECRET
from tests.security.conftest import ACCESS_COOKIE, CABLE_PROTOCOL, CHANNEL, Account, Accounts, log_since
from tests.services import LiveServer
from webapp.auth.tokens import AUDIENCE, ISSUER, issue_access_token

API_STREAM = "/api/v1/notifications/stream"
PAGE_STREAM = "/notifications/stream"
SSE_TIMEOUT = 5.0


def bad_tokens(user_id: int) -> dict[str, str]:
    """Tokens for a real user that must all be refused; only the flaw differs."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 900,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "jti": "x" * 32,
        "sid": "s" * 32,
    }
    return {
        "garbage": "garbage",
        "expired": issue_access_token(user_id, TEST_SECRET, timedelta(minutes=-5), "test-session"),
        "wrong_key": issue_access_token(
            user_id, "another-secret-key-that-is-long-enough-0123456789", timedelta(minutes=5), "test-session"
        ),
        "alg_none": jwt.encode(claims, None, algorithm="none"),
        "wrong_audience": jwt.encode({**claims, "aud": "someone-else"}, TEST_SECRET, algorithm="HS256"),
        # Signed with the right key, but the claims are missing or of the wrong type or range.
        **{kind: jwt.encode(bad, TEST_SECRET, algorithm="HS256") for kind, bad in malformed_claims(claims).items()},
    }


def malformed_claims(claims: dict[str, Any]) -> dict[str, dict[str, Any]]:
    without_sub = {k: v for k, v in claims.items() if k != "sub"}
    without_jti = {k: v for k, v in claims.items() if k != "jti"}
    return {
        "sub_missing": without_sub,
        "sub_not_a_number": {**claims, "sub": "admin"},
        "sub_beyond_32_bits": {**claims, "sub": str(2**31)},
        "sub_beyond_64_bits": {**claims, "sub": str(2**64)},
        "sub_zero": {**claims, "sub": "0"},
        "exp_beyond_year_9999": {**claims, "exp": 10**12},
        "exp_a_string": {**claims, "exp": "tomorrow"},
        "iat_a_list": {**claims, "iat": [1]},
        "jti_missing": without_jti,
        "jti_not_a_string": {**claims, "jti": {"id": 1}},
    }


@asynccontextmanager
async def sse(server: LiveServer, path: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10, follow_redirects=False) as client:
        async with client.stream("GET", path, **kwargs) as response:
            yield response


class SSEReader:
    """Collects a stream's raw lines in the background."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines: list[str] = []
        self._task = asyncio.create_task(self._read(response))

    async def _read(self, response: httpx.Response) -> None:
        async for line in response.aiter_lines():
            self.lines.append(line)

    def events(self) -> list[dict[str, str]]:
        """Complete events so far: {"event", "id", "data"} (data lines joined by newlines)."""
        events, current = [], {"data": []}  # type: ignore[var-annotated]
        for line in list(self.lines):
            if line == "":
                if current["data"] or "event" in current:
                    events.append({**current, "data": "\n".join(current["data"])})
                current = {"data": []}
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    current["data"].append(value)
                else:
                    current[field] = value
        return events

    async def wait_for_event(self, name: str, seconds: float = SSE_TIMEOUT) -> dict[str, str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == name:
                    return event
            await asyncio.sleep(0.02)
        pytest.fail(f"no {name!r} event within {seconds} s; lines: {self.lines[-30:]}", pytrace=False)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# --- authentication on every real-time endpoint -----------------------------------------------


async def test_valid_credentials_open_every_realtime_endpoint(server, accounts: Accounts, open_cable) -> None:
    """The control for the refusals below: the same endpoints do accept a good token."""
    user = await accounts.create()
    async with sse(server, API_STREAM, headers=user.bearer) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
    async with sse(server, PAGE_STREAM, cookies={ACCESS_COOKIE: user.token}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
    async with open_cable(user.token) as cable:
        await cable.wait_for(lambda f: f.get("type") == "welcome", "welcome")
        assert (await cable.subscribe())["type"] == "confirm_subscription"


async def test_api_stream_refuses_bad_and_expired_tokens(server, accounts: Accounts) -> None:
    user = await accounts.create()
    outcomes = {}
    for kind, token in {**bad_tokens(user.id), "no_token": ""}.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with sse(server, API_STREAM, headers=headers) as response:
            body = (await response.aread()).decode()
            outcomes[kind] = (response.status_code, response.headers.get("content-type", ""), body[:120])
    refused = {kind: status for kind, (status, _, _) in outcomes.items()}
    assert refused == dict.fromkeys(outcomes, 401), outcomes
    assert all(ctype.startswith("application/json") for _, ctype, _ in outcomes.values()), outcomes


async def test_page_stream_refuses_bad_and_expired_cookies(server, accounts: Accounts) -> None:
    """The web UI's stream authenticates by cookie. A bad access cookie and no refresh cookie is
    an anonymous caller: 401, which an EventSource treats as final (a redirect to the HTML login
    page is not an answer a stream client can act on)."""
    user = await accounts.create()
    outcomes = {}
    for kind, token in bad_tokens(user.id).items():
        async with sse(server, PAGE_STREAM, cookies={ACCESS_COOKIE: token}) as response:
            outcomes[kind] = (response.status_code, response.headers.get("location"))
    assert {kind: status for kind, (status, _) in outcomes.items()} == dict.fromkeys(outcomes, 401), (
        f"status and Location per bad cookie: {outcomes}"
    )


async def test_cable_refuses_bad_and_expired_tokens(server, accounts: Accounts, open_cable) -> None:
    user = await accounts.create()
    cases: dict[str, dict[str, Any]] = {kind: {"token": token} for kind, token in bad_tokens(user.id).items()}
    cases["no_credentials"] = {}
    cases["garbage_cookie"] = {"cookies": {ACCESS_COOKIE: "garbage"}}
    for kind, how in cases.items():
        async with open_cable(**how) as cable:
            first = await cable.wait_for(lambda f: True, f"a first frame ({kind})")
            assert first == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}, kind
            # Whatever the client tries next, there is no subscription and the socket closes.
            try:
                await cable.send({"command": "subscribe", "identifier": CHANNEL})
            except Exception:  # already closed: the expected outcome
                pass
            await cable.wait_closed()
            assert [f.get("type") for f in cable.frames] == ["disconnect"], (kind, cable.frames)


async def test_cable_refuses_disallowed_origins(server, accounts: Accounts, open_cable) -> None:
    user = await accounts.create()
    url = f"ws://127.0.0.1:{server.port}/cable?token={user.token}"
    port_neighbour = f"http://127.0.0.1:{server.port + 1 if server.port < 65535 else server.port - 1}"
    for origin in ("https://evil.example", f"{server.url}.evil.example", port_neighbour, "null"):
        for headers in (None, {"Cookie": f"{ACCESS_COOKIE}={user.token}"}):
            target = url if headers is None else url.split("?")[0]
            with pytest.raises(InvalidStatus) as refused:
                async with connect(target, origin=origin, subprotocols=[CABLE_PROTOCOL], additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 403, (origin, headers)
    # The app's own origin is allowed.
    async with open_cable(user.token, origin=server.url) as cable:
        await cable.wait_for(lambda f: f.get("type") == "welcome", "welcome from the allowed origin")


# --- bad frames ----------------------------------------------------------------------------------

OTHER = json.dumps({"channel": "OtherChannel"})
BAD_FRAMES: dict[str, Any] = {
    "not_json": "this is not json",
    "json_array": "[1, 2, 3]",
    "json_string": '"subscribe"',
    "binary": b"\x00\xffbinary\x00",
    "no_identifier": {"command": "subscribe"},
    "no_command": {"identifier": CHANNEL},
    "unknown_command": {"command": "explode", "identifier": CHANNEL},
    "command_not_a_string": {"command": ["subscribe"], "identifier": CHANNEL},
    "identifier_not_json": {"command": "subscribe", "identifier": "{channel"},
    "identifier_an_array": {"command": "subscribe", "identifier": "[1]"},
    "data_not_json": {"command": "message", "identifier": CHANNEL, "data": "{nope"},
    "data_an_array": {"command": "message", "identifier": CHANNEL, "data": "[1]"},
    "no_action": {"command": "message", "identifier": CHANNEL, "data": json.dumps({"id": 1})},
    "unknown_action": {"command": "message", "identifier": CHANNEL, "data": json.dumps({"action": "drop_tables"})},
    "id_not_a_number": {"command": "message", "identifier": CHANNEL, "data": '{"action":"mark_as_read","id":"abc"}'},
    "id_missing": {"command": "message", "identifier": CHANNEL, "data": '{"action":"mark_as_read"}'},
    "id_negative": {"command": "message", "identifier": CHANNEL, "data": '{"action":"mark_as_read","id":-1}'},
    "id_beyond_32_bits": {
        "command": "message",
        "identifier": CHANNEL,
        "data": json.dumps({"action": "mark_as_read", "id": 2**40}),
    },
    "id_out_of_range": {
        "command": "message",
        "identifier": CHANNEL,
        "data": json.dumps({"action": "mark_as_read", "id": 10**20}),
    },
    "message_on_unsubscribed_identifier": {
        "command": "message",
        "identifier": OTHER,
        "data": json.dumps({"action": "mark_all_as_read"}),
    },
    "up_to_seq_below_32_bits": {
        "command": "message",
        "identifier": CHANNEL,
        "data": json.dumps({"action": "mark_all_as_read", "up_to_seq": -(2**40)}),
    },
    "up_to_seq_beyond_32_bits": {
        "command": "message",
        "identifier": CHANNEL,
        "data": json.dumps({"action": "mark_all_as_read", "up_to_seq": 2**40}),
    },
}


OUT_OF_RANGE_IDS = ("id_beyond_32_bits", "id_out_of_range", "up_to_seq_below_32_bits", "up_to_seq_beyond_32_bits")


@pytest.mark.parametrize("kind", list(BAD_FRAMES))
async def test_cable_ignores_a_bad_frame(kind: str, accounts: Accounts, open_cable) -> None:
    admin = await accounts.create(admin=True)
    user = await accounts.create()
    await accounts.announce(admin, "Stays unread", delivered_to=(user,))
    before = await accounts.inbox(user)
    assert before["unread_count"] == 1
    async with open_cable(user.token) as cable:
        assert (await cable.subscribe())["type"] == "confirm_subscription"
        await cable.send(BAD_FRAMES[kind])
        await cable.alive()  # answered after the bad frame: it was read, ignored, and the loop goes on
        assert not cable.messages("notification_read"), cable.frames
        assert not [f for f in cable.frames if f.get("type") == "disconnect"], cable.frames
    assert await accounts.inbox(user) == before


async def test_cable_rejects_unknown_channels_and_keeps_pinging(accounts: Accounts, open_cable) -> None:
    admin = await accounts.create(admin=True)
    user = await accounts.create()
    async with open_cable(user.token) as cable:
        assert (await cable.subscribe())["type"] == "confirm_subscription"
        for identifier in (json.dumps({"channel": "AdminChannel"}), json.dumps({"channel": ["NotificationsChannel"]})):
            assert (await cable.subscribe(identifier))["type"] == "reject_subscription"
        assert (await cable.subscribe())["type"] == "reject_subscription", "a duplicate subscription is refused"
        for kind, frame in BAD_FRAMES.items():
            if kind not in OUT_OF_RANGE_IDS:  # those have their own cases above
                await cable.send(frame)
        mark = len(cable.frames)
        # The server's own keep-alive goes on (every 3 s) ...
        await cable.wait_for(lambda f: f.get("type") == "ping", "a ping after the bad frames", seconds=5, after=mark)
        # ... and the original subscription still delivers and still performs actions.
        await accounts.announce(admin, "Still listening")
        arrived = await cable.wait_message("new_notification")
        await cable.perform({"action": "mark_as_read", "id": arrived["notification"]["id"]})
        await cable.wait_message("notification_read", "the read echo")
    assert (await accounts.inbox(user))["unread_count"] == 0


async def test_cable_actions_on_another_users_notification_change_nothing(accounts: Accounts, open_cable) -> None:
    admin = await accounts.create(admin=True)
    victim = await accounts.create()
    attacker = await accounts.create()
    await accounts.announce(admin, "For everyone", delivered_to=(victim, attacker))
    victim_before = await accounts.inbox(victim)
    [victim_id] = victim_before["items"]
    [attacker_id] = (await accounts.inbox(attacker))["items"]
    async with open_cable(victim.token) as victim_cable, open_cable(attacker.token) as cable:
        assert (await victim_cable.subscribe())["type"] == "confirm_subscription"
        assert (await cable.subscribe())["type"] == "confirm_subscription"
        await cable.perform({"action": "mark_as_read", "id": victim_id})
        await cable.perform({"action": "mark_as_read", "id": str(victim_id)})
        # Actions run in order: once the attacker's own read is echoed, the foreign ones were handled.
        await cable.perform({"action": "mark_as_read", "id": attacker_id})
        echo = await cable.wait_message("notification_read", "the echo of the attacker's own read")
        assert echo["ids"] == [attacker_id]
        await cable.alive()
        assert [m["ids"] for m in cable.messages("notification_read")] == [[attacker_id]]
        assert not victim_cable.messages("notification_read"), victim_cable.frames
    assert await accounts.inbox(victim) == victim_before


# --- the token in the handshake URL never reaches the log ---------------------------------------


async def test_query_token_never_appears_in_the_server_log(server: LiveServer, accounts: Accounts, open_cable) -> None:
    user = await accounts.create()
    start = server.log_path.stat().st_size
    expired = issue_access_token(user.id, TEST_SECRET, timedelta(minutes=-5), "test-session")
    async with open_cable(user.token) as cable:
        await cable.wait_for(lambda f: f.get("type") == "welcome", "welcome")
        assert (await cable.subscribe())["type"] == "confirm_subscription"
    async with open_cable(expired) as cable:
        await cable.wait_closed()
    with pytest.raises(InvalidStatus):
        async with connect(f"ws://127.0.0.1:{server.port}/cable?token={user.token}", origin="https://evil.example"):
            pass
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:  # a plain GET, no upgrade
        await client.get(f"/cable?token={user.token}")

    # Wait until the log shows these requests, so the check below is not vacuous.
    deadline = time.monotonic() + 5
    while True:
        log = log_since(server, start)
        if log.count('"WebSocket /cable"') >= 3 and "GET /cable " in log:
            break
        assert time.monotonic() < deadline, f"the server did not log the handshakes at INFO:\n{log}"
        await asyncio.sleep(0.05)
    full_log = server.log_path.read_text(errors="replace")
    for token in (user.token, expired):
        assert token not in full_log
        assert token.split(".")[2] not in full_log  # not even the signature on its own
    assert "token=" not in log, log


# --- another user's notification, through every route ------------------------------------------

ROUTES = {
    # name: (interface, method, path, what the notification starts as, owner's status)
    "api_read": ("api", "POST", "/api/v1/notifications/{id}/read", "unread", 200),
    "api_unread": ("api", "POST", "/api/v1/notifications/{id}/unread", "read", 200),
    "api_archive": ("api", "POST", "/api/v1/notifications/{id}/archive", "unread", 200),
    "api_unarchive": ("api", "POST", "/api/v1/notifications/{id}/unarchive", "archived", 200),
    "page_read": ("page", "POST", "/notifications/{id}/read", "unread", 200),
    "page_unread": ("page", "POST", "/notifications/{id}/unread", "read", 200),
    "page_archive": ("page", "POST", "/notifications/{id}/archive", "unread", 200),
    "page_unarchive": ("page", "POST", "/notifications/{id}/unarchive", "archived", 200),
    "page_open": ("page", "GET", "/notifications/{id}/open", "unread", 302),
}


@pytest.mark.parametrize("route", list(ROUTES))
async def test_notification_route_as_another_user_is_404_and_changes_nothing(
    route: str, http: httpx.AsyncClient, accounts: Accounts, page_session
) -> None:
    interface, method, template, start, owner_status = ROUTES[route]
    admin = await accounts.create(admin=True)
    owner = await accounts.create()
    intruder = await accounts.create()
    await accounts.announce(admin, "Owner's eyes only", "A private detail", delivered_to=(owner,))
    [notification_id] = (await accounts.inbox(owner))["items"]
    if start != "unread":
        action = "read" if start == "read" else "archive"
        response = await http.post(f"/api/v1/notifications/{notification_id}/{action}", headers=owner.bearer)
        assert response.status_code == 200
    before = await accounts.inbox(owner)
    path = template.format(id=notification_id)

    async def call(account: Account) -> httpx.Response:
        if interface == "api":
            return await http.request(method, path, headers=account.bearer)
        pages = page_session(account)
        # A GET as a click on one of our pages sends it (from another site, /open reads nothing).
        clicked = {"Sec-Fetch-Site": "same-origin"}
        return await (pages.post(path) if method == "POST" else pages.get(path, headers=clicked))

    response = await call(intruder)
    assert response.status_code == 404, (response.status_code, response.text[:300])
    assert "Owner&#39;s eyes only" not in response.text and "Owner's eyes only" not in response.text
    assert "A private detail" not in response.text
    assert await accounts.inbox(owner) == before, "the intruder's request changed the owner's inbox"

    # Control: the same request by the owner goes through, so the 404 above was about ownership.
    response = await call(owner)
    assert response.status_code == owner_status, (response.status_code, response.text[:300])
    after = await accounts.inbox(owner)
    if template.endswith("archive"):  # an archived item is out of the listing, back when unarchived
        assert (notification_id in after["items"]) == (start == "archived")
    else:
        assert (after["items"][notification_id]["read_at"] is None) == (start == "read")


async def test_notification_routes_with_an_out_of_range_id_are_refused_as_bad_input(
    http: httpx.AsyncClient, accounts: Accounts, page_session
) -> None:
    """An id no row can have (beyond the column's integer range) is invalid input: a clear 422
    validation_error on every route that takes one, never a driver error (500)."""
    user = await accounts.create()
    pages = page_session(user)
    outcomes = {}
    for route, (interface, method, template, _, _) in ROUTES.items():
        for notification_id in (2**40, 10**20):
            path = template.format(id=notification_id)
            if interface == "api":
                response = await http.request(method, path, headers=user.bearer)
            else:
                response = await (pages.post(path) if method == "POST" else pages.get(path))
            outcomes[f"{method} {path}"] = response.status_code
    wrong = "\n".join(f"{request} -> {status}" for request, status in outcomes.items() if status != 422)
    assert not wrong, f"not 422:\n{wrong}"


# --- markup in a notification is text everywhere ------------------------------------------------

TITLE = "<img src=x onerror=alert(1)>"
BODY = "<div hx-get=/logout hx-trigger=load>"


def assert_escaped_html(where: str, html: str) -> None:
    assert "&lt;img src=x onerror=alert(1)&gt;" in html, f"{where}: the title is missing"
    assert "&lt;div hx-get=/logout hx-trigger=load&gt;" in html, f"{where}: the body is missing"
    assert "<img src=x" not in html, f"{where}: the title was rendered as markup"
    assert "<div hx-get=/logout" not in html, f"{where}: the body was rendered as markup"


async def test_announcement_markup_is_escaped_in_html_and_plain_in_json(
    server: LiveServer, accounts: Accounts, page_session, open_cable
) -> None:
    admin = await accounts.create(admin=True)
    reader = await accounts.create()
    async with (
        sse(server, PAGE_STREAM, cookies={ACCESS_COOKIE: reader.token}) as page_stream,
        sse(server, API_STREAM, headers=reader.bearer) as api_stream,
        open_cable(reader.token) as cable,
    ):
        assert page_stream.status_code == 200 and api_stream.status_code == 200
        page_events, api_events = SSEReader(page_stream), SSEReader(api_stream)
        try:
            assert (await cable.subscribe())["type"] == "confirm_subscription"
            await page_events.wait_for_event("count")  # both streams are live before the announcement
            await api_events.wait_for_event("notification_count")
            await accounts.announce(admin, TITLE, BODY)

            pushed = await page_events.wait_for_event("notification")
            raw_page_stream = "\n".join(page_events.lines)
            assert_escaped_html("the /notifications/stream data", pushed["data"])
            assert "<img src=x" not in raw_page_stream and "<div hx-get=/logout" not in raw_page_stream

            api_event = await api_events.wait_for_event("new_notification")
            payload = json.loads(api_event["data"])
            assert (payload["title"], payload["body"]) == (TITLE, BODY)

            notification = (await cable.wait_message("new_notification", "new_notification on /cable"))["notification"]
            assert (notification["title"], notification["body"]) == (TITLE, BODY)
        finally:
            await page_events.stop()
            await api_events.stop()

    pages = page_session(reader)
    inbox_page = await pages.get("/notifications")
    assert inbox_page.status_code == 200
    assert_escaped_html("GET /notifications", inbox_page.text)
    panel = await pages.post("/notifications/panel", headers={"HX-Request": "true"})
    assert panel.status_code == 200, panel.text[:300]
    assert_escaped_html("POST /notifications/panel", panel.text)


async def test_api_and_pages_treat_malformed_claims_as_no_session(server, accounts: Accounts) -> None:
    """A token signed with the right key whose claims are missing or of the wrong type is no
    session at all: 401 on the API, the login page for a page, never a 500."""
    user = await accounts.create()
    now = int(time.time())
    claims = {"sub": str(user.id), "iat": now, "exp": now + 900, "aud": AUDIENCE, "iss": ISSUER, "jti": "x" * 32}
    outcomes = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=10, follow_redirects=False) as client:
        for kind, bad in malformed_claims(claims).items():
            token = jwt.encode(bad, TEST_SECRET, algorithm="HS256")
            api = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            client.cookies.clear()
            client.cookies.set(ACCESS_COOKIE, token)
            page = await client.get("/bookings")
            outcomes[kind] = (
                api.status_code,
                api.json()["error"]["code"],
                page.status_code,
                page.headers.get("location"),
            )
    expected = (401, "unauthorized", 302, "/login?next=%2Fbookings")
    assert outcomes == dict.fromkeys(outcomes, expected), outcomes
