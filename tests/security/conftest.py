"""Security fixtures: one live server (LOG_LEVEL=INFO, so access lines reach its log), users
inserted straight into the database and signed in through the real API login, a raw ActionCable
connection (websockets) and a cookie-authenticated page session with the CSRF double submit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.api import Account
from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET
from tests.services import LiveServer
from webapp.auth.models import User

ACCESS_COOKIE = "tidings_access"
CSRF_COOKIE = "tidings_csrf"
CALL_FAILED = pytest.StashKey[bool]()
CABLE_PROTOCOL = Subprotocol("actioncable-v1-json")
CHANNEL = json.dumps({"channel": "NotificationsChannel"})
_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # real argon2, cheap
_emails = iter(range(1, 1_000_000))


@pytest.fixture(scope="package")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log_path = tmp_path_factory.mktemp("security-server") / "server.log"
    live = LiveServer(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": TEST_SECRET,
            "LOG_LEVEL": "INFO",
            "ANNOUNCEMENTS_PER_HOUR": "100000",
            # Tests of the abuse limits stand for many clients behind this proxy (X-Forwarded-For)
            # and meet these limits quickly; other tests send no such header.
            "TRUSTED_PROXIES": "127.0.0.1",
            "REGISTRATIONS_PER_HOUR": "3",
            "INVITATIONS_PER_HOUR": "3",
            "PYTHONUNBUFFERED": "1",  # access lines (stdout) reach the log file at once
        },
        log_path,
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


def log_since(server: LiveServer, offset: int) -> str:
    with server.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def no_server_errors(server: LiveServer, request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test whose requests made the server log an exception, even if every answer the
    test looked at was right (unless the test already failed: one report per problem)."""
    start = server.log_path.stat().st_size
    yield
    new = log_since(server, start)
    if "Traceback" in new and not request.node.stash.get(CALL_FAILED, False):
        pytest.fail(f"the server logged an exception during this test:\n{new[-3000:]}", pytrace=False)


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10, follow_redirects=False) as client:
        yield client


# --- accounts and notifications --------------------------------------------------------------


class Accounts:
    """Creates users (admin via UPDATE users SET role='admin') and signs them in by the API."""

    def __init__(self, session: AsyncSession, http: httpx.AsyncClient) -> None:
        self.session = session
        self.http = http

    async def create(self, *, admin: bool = False) -> Account:
        email = f"sec{next(_emails)}-{time.monotonic_ns()}@example.com"
        user = User(email=email, name="Security Tester", password_hash=_HASHER.hash(DEFAULT_PASSWORD))
        self.session.add(user)
        await self.session.commit()
        user_id = user.id
        if admin:
            await self.session.execute(update(User).where(User.id == user_id).values(role="admin"))
            await self.session.commit()
        response = await self.http.post("/api/v1/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
        assert response.status_code == 200, response.text
        return Account(user_id, email, response.json()["token"])

    async def announce(
        self, admin: Account, title: str, body: str = "", *, delivered_to: tuple[Account, ...] = ()
    ) -> None:
        """An admin's announcement to everyone; returns once it is in the inboxes of `delivered_to`
        (the fan-out may run after the request, as a job)."""
        response = await self.http.post(
            "/api/v1/announcements", json={"title": title, "body": body}, headers=admin.bearer
        )
        assert response.status_code == 202, response.text
        for account in delivered_to:
            deadline = time.monotonic() + 10
            while not any(n["title"] == title for n in (await self.inbox(account))["items"].values()):
                assert time.monotonic() < deadline, f"{title!r} did not reach user {account.id} within 10 s"
                await asyncio.sleep(0.05)

    async def inbox(self, account: Account) -> dict[str, Any]:
        """The owner's view through the API: items by id, plus count, seq and version."""
        listing = await self.http.get("/api/v1/notifications", params={"limit": "100"}, headers=account.bearer)
        state = await self.http.get("/api/v1/notifications/unread_count", headers=account.bearer)
        assert listing.status_code == 200 and state.status_code == 200, (listing.text, state.text)
        return {"items": {n["id"]: n for n in listing.json()["items"]}, **state.json()}


@pytest.fixture
def accounts(session: AsyncSession, http: httpx.AsyncClient) -> Accounts:
    return Accounts(session, http)


# --- a browser-like page session ---------------------------------------------------------------


class PageSession:
    """Cookie authentication with the API login's token, plus the CSRF double submit."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        if CSRF_COOKIE not in self.client.cookies:
            response = await self.client.get("/")
            assert CSRF_COOKIE in self.client.cookies, f"no CSRF cookie from GET /: {response.status_code}"
        headers = {"x-csrftoken": self.client.cookies[CSRF_COOKIE], **kwargs.pop("headers", {})}
        return await self.client.post(path, headers=headers, **kwargs)


@pytest.fixture
async def page_session(server: LiveServer) -> AsyncIterator[Callable[[Account], PageSession]]:
    clients: list[httpx.AsyncClient] = []

    def make(account: Account) -> PageSession:
        client = httpx.AsyncClient(
            base_url=server.url, timeout=10, follow_redirects=False, cookies={ACCESS_COOKIE: account.token}
        )
        clients.append(client)
        return PageSession(client)

    yield make
    for client in clients:
        await client.aclose()


# --- a raw ActionCable connection ------------------------------------------------------------


class Cable:
    """Every frame the server sends is collected in the background; tests wait on them."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def subscribe(self, identifier: str = CHANNEL) -> dict[str, Any]:
        mark = len(self.frames)
        await self.send({"command": "subscribe", "identifier": identifier})
        return await self.wait_for(
            lambda f: (
                f.get("identifier") == identifier and f.get("type") in ("confirm_subscription", "reject_subscription")
            ),
            f"an answer to subscribe {identifier}",
            after=mark,
        )

    async def perform(self, data: dict[str, Any], identifier: str = CHANNEL) -> None:
        await self.send({"command": "message", "identifier": identifier, "data": json.dumps(data)})

    def messages(self, message_type: str | None = None) -> list[dict[str, Any]]:
        return [
            f["message"]
            for f in list(self.frames)
            if isinstance(f.get("message"), dict) and message_type in (None, f["message"].get("type"))
        ]

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, seconds: float = 5.0, after: int = 0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            for frame in list(self.frames)[after:]:
                if predicate(frame):
                    return frame
            if self.closed.is_set() or time.monotonic() > deadline:
                state = f"closed ({self.ws.close_code} {self.ws.close_reason!r})" if self.closed.is_set() else "timeout"
                pytest.fail(f"cable: waited for {what}: {state}; frames: {self.frames[-20:]}", pytrace=False)
            await asyncio.sleep(0.02)

    async def wait_message(self, message_type: str, what: str = "", seconds: float = 5.0) -> dict[str, Any]:
        """The first channel message of a type (frames whose `message` is an object, not pings)."""
        frame = await self.wait_for(
            lambda f: isinstance(f.get("message"), dict) and f["message"].get("type") == message_type,
            what or message_type,
            seconds,
        )
        return frame["message"]  # type: ignore[no-any-return]

    async def wait_closed(self, seconds: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self.closed.wait(), seconds)
        except TimeoutError:
            pytest.fail(f"cable: the server did not close the connection; frames: {self.frames}", pytrace=False)

    async def alive(self) -> None:
        """The connection still works: a WebSocket ping is answered, and a command is answered."""
        assert not self.closed.is_set(), f"closed ({self.ws.close_code} {self.ws.close_reason!r})"
        pong = await self.ws.ping()
        await asyncio.wait_for(pong, 5)
        probe = json.dumps({"channel": "ProbeChannel", "nonce": time.monotonic_ns()})
        answer = await self.subscribe(probe)
        assert answer["type"] == "reject_subscription"

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


@pytest.fixture
async def open_cable(server: LiveServer) -> AsyncIterator[Callable[..., Any]]:
    """`async with open_cable(token=..., origin=..., cookies=...) as cable:`"""

    @asynccontextmanager
    async def open_(
        token: str | None = None, *, origin: str | None = None, cookies: dict[str, str] | None = None
    ) -> AsyncIterator[Cable]:
        url = f"ws://127.0.0.1:{server.port}/cable"
        if token is not None:
            url += f"?token={token}"
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else None
        async with connect(
            url, subprotocols=[CABLE_PROTOCOL], origin=origin, additional_headers=headers, open_timeout=5
        ) as ws:
            cable = Cable(ws)
            try:
                yield cable
            finally:
                await cable.close()

    yield open_
