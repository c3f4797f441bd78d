"""Interoperability fixtures: live servers, real third-party Node clients run as subprocesses,
and fast set-up (users straight into the database, tokens from the real API login).

Node and tests/interop/node_modules (`npm ci --prefix tests/interop`, run by `make test`) are
services here: missing, they skip the tests, or fail them with CI=true.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import Account
from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET
from tests.services import LiveServer, missing_service
from webapp.auth.models import User

INTEROP_DIR = Path(__file__).resolve().parent
NODE_PACKAGES = ("@rails/actioncable", "ws", "eventsource")
# Cheap but real argon2 hashes: the API login still verifies them, in milliseconds.
_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_emails = iter(range(1, 1_000_000))


# --- node and the pinned packages ------------------------------------------------------------


@pytest.fixture(scope="session")
def node() -> str:
    executable = shutil.which("node")
    if executable is None:
        missing_service("node is not on PATH (the interop tests run real Node clients)")
    for package in NODE_PACKAGES:
        if not (INTEROP_DIR / "node_modules" / package / "package.json").exists():
            missing_service(f"tests/interop/node_modules lacks {package}: run `npm ci --prefix tests/interop`")
    return str(executable)


class NodeClient:
    """One Node script in a subprocess; its stdout is JSON lines, collected as they arrive."""

    def __init__(self, node: str, script: str, env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> None:
        self.argv = [node, str(INTEROP_DIR / script)]
        self.env = {**os.environ, **env}
        self.pass_fds = pass_fds
        self.script = script
        self.lines: list[dict[str, Any]] = []
        self.arrived: list[float] = []  # time.monotonic() each line of `lines` was read
        self.stderr: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> NodeClient:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=INTEROP_DIR,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=self.pass_fds,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.process.stdout, self._on_stdout)),
            asyncio.create_task(self._read(self.process.stderr, self.stderr.append)),
        ]
        return self

    async def command(self, line: str) -> None:
        """One line on the script's stdin (the scripts that take commands say which)."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    @staticmethod
    async def _read(stream: asyncio.StreamReader, sink: Callable[[str], None]) -> None:
        async for raw in stream:
            sink(raw.decode(errors="replace").rstrip("\n"))

    def _on_stdout(self, text: str) -> None:
        if not text.strip():
            return
        try:
            line = json.loads(text)
        except ValueError:
            line = {"kind": "unparsed", "text": text}
        self.arrived.append(time.monotonic())
        self.lines.append(line)

    @property
    def exited(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    def arrival(self, line: dict[str, Any]) -> float:
        """When this line (one of `lines`, not a copy) was read."""
        return next(at for at, seen in zip(self.arrived, self.lines, strict=False) if seen is line)

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if predicate(line)]

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, seconds: float = 10.0, count: int = 1
    ) -> dict[str, Any]:
        """The count-th line matching predicate (already printed or still to come)."""
        deadline = time.monotonic() + seconds
        while True:
            found = self.matching(predicate)
            if len(found) >= count:
                return found[count - 1]
            if self.exited or time.monotonic() > deadline:
                state = f"exited with {self.process.returncode}" if self.exited else f"no match within {seconds} s"
                pytest.fail(f"{self.script}: waited for {what}, {state}.\n{self.transcript()}", pytrace=False)
            await asyncio.sleep(0.02)

    def transcript(self) -> str:
        out = "\n".join(json.dumps(line)[:400] for line in self.lines[-60:])  # big payloads cut short
        err = "\n".join(self.stderr[-30:])
        return f"--- stdout (JSON lines) ---\n{out}\n--- stderr (tail) ---\n{err}"

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


NodeFactory = Callable[..., Awaitable[NodeClient]]


@pytest.fixture
async def node_client(node: str) -> AsyncIterator[NodeFactory]:
    """Starts a script from tests/interop against a server with a token; stops it after the test."""
    clients: list[NodeClient] = []

    async def start(
        script: str,
        server: LiveServer,
        token: str,
        max_seconds: int = 45,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> NodeClient:
        env = {
            "TIDINGS_BASE_URL": server.url,
            "TIDINGS_TOKEN": token,
            "TIDINGS_MAX_SECONDS": str(max_seconds),
            **(env or {}),
        }
        client = NodeClient(node, script, env, pass_fds)
        clients.append(client)
        return await client.start()

    yield start
    for client in clients:
        await client.stop()


# --- live servers ----------------------------------------------------------------------------

BASE_ENV = {"SECRET_KEY": TEST_SECRET, "LOG_LEVEL": "WARNING", "ANNOUNCEMENTS_PER_HOUR": "100000"}


@pytest.fixture(scope="package")
def live_servers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """`live_servers(**env)`: one running server per distinct environment, shared by the session."""
    servers: dict[tuple[tuple[str, str], ...], LiveServer] = {}

    def get(**env: str) -> LiveServer:
        key = tuple(sorted(env.items()))
        if key not in servers:
            log_path = tmp_path_factory.mktemp("interop-server") / "server.log"
            server = LiveServer({**BASE_ENV, "DATABASE_URL": database_url, **env}, log_path)
            server.start()
            servers[key] = server
        return servers[key]

    yield get
    for server in servers.values():
        server.stop()


def assert_no_server_errors(server: LiveServer, since: int) -> None:
    with server.log_path.open("rb") as log:
        log.seek(since)
        new = log.read().decode(errors="replace")
    assert "Traceback" not in new, f"the server logged an exception during this test:\n{new[-3000:]}"


# --- set-up through the database and the API -------------------------------------------------


async def create_account(session: AsyncSession, http: httpx.AsyncClient, *, admin: bool = False) -> Account:
    """A user inserted directly (cheap hash), signed in through the real API login."""
    email = f"interop{next(_emails)}-{time.monotonic_ns()}@example.com"
    user = User(email=email, name=f"Interop {email[:12]}", password_hash=_HASHER.hash(DEFAULT_PASSWORD))
    session.add(user)
    await session.commit()
    if admin:
        await session.execute(update(User).where(User.id == user.id).values(role="admin"))
        await session.commit()
    response = await http.post("/api/v1/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    return Account(user.id, email, response.json()["token"])


async def announce(
    http: httpx.AsyncClient, admin: Account, title: str, body: str = "", *, delivered_to: tuple[Account, ...] = ()
) -> None:
    """An admin's announcement to everyone. Returns once it is in the inboxes of `delivered_to`
    (nothing waited for by default: a stream under test is what observes delivery)."""
    response = await http.post("/api/v1/announcements", json={"title": title, "body": body}, headers=admin.bearer)
    assert response.status_code == 202, response.text
    for account in delivered_to:
        await wait_delivered(http, account, title)


async def wait_delivered(http: httpx.AsyncClient, account: Account, title: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        response = await http.get("/api/v1/notifications", params={"limit": "100"}, headers=account.bearer)
        assert response.status_code == 200, response.text
        if any(item["title"] == title for item in response.json()["items"]):
            return
        assert time.monotonic() < deadline, f"{title!r} did not reach user {account.id} within {seconds} s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def http_for() -> AsyncIterator[Callable[[LiveServer], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(server: LiveServer) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=server.url, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
