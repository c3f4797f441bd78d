"""Real server processes for the stream reliability tests, and small helpers to drive them.

The servers share the test database, so users and notifications made through the `session`
fixture are visible to them. Notifications made in this process do not ring a server's
in-process doorbell: tests use them where replay from the database is under test, and admin
announcements (POST /api/v1/announcements) where live delivery is. Announcements may be fanned
out by a background job, so tests wait for their results with deadlines, never assume them.

The servers a run needs are started together (in parallel: each start is mostly Python imports
on a busy machine) and stopped at the end of the run. A traceback in a server's log fails the
test during which it was logged (or the shutdown); with SQLite, so does a database a server
leaves write-locked after a test.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET, wait_for_live_jobs
from tests.services import LiveServer
from webapp.auth.models import User
from webapp.db import utcnow
from webapp.notifications.services import NewNotification, NotificationService

HEARTBEAT_SECONDS = 1
REPLAY_LIMIT = 400
CONNECTION_CAP = 3
QUEUE_SIZE = 8
MAX_LIFETIME_SECONDS = 2
RESYNC_SECONDS = 1

_emails = itertools.count(1)
_id_blocks = itertools.count(1)
ID_BLOCK = 10_000


def server_env(database_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": "",  # embedded mode unless a test says otherwise, whatever this shell has
        "ANNOUNCEMENTS_PER_HOUR": "100000",
        "STREAM_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "STREAM_REPLAY_LIMIT": str(REPLAY_LIMIT),
        "STREAM_MAX_CONNECTIONS_PER_USER": str(CONNECTION_CAP),
        "STREAM_QUEUE_SIZE": str(QUEUE_SIZE),
    }
    env.update(overrides)
    return env


_refusing: list[socket.socket] = []


def refusing_redis_url() -> str:
    """A Redis URL whose port refuses every connection at once: a socket bound to it that never
    listens keeps the port taken for the whole run, so nothing else can start answering there."""
    if not _refusing:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        _refusing.append(sock)
    return f"redis://127.0.0.1:{_refusing[0].getsockname()[1]}/0"


SERVERS: dict[str, Callable[[str], dict[str, str]]] = {
    # heartbeat 1 s, replay limit 400, at most 3 streams per user, 8 queued doorbell messages
    "server": lambda url: server_env(url),
    # the same, but every stream ends after 2 s
    "lifetime_server": lambda url: server_env(url, STREAM_MAX_LIFETIME_SECONDS=str(MAX_LIFETIME_SECONDS)),
    # the same, checking every RESYNC_SECONDS for notifications whose doorbell ring was lost
    "resync_server": lambda url: server_env(url, STREAM_RESYNC_SECONDS=str(RESYNC_SECONDS)),
    # scaled mode with a Redis it can never reach (connections refused): no ring in or out
    "unreachable_redis_server": lambda url: server_env(
        url,
        REDIS_URL=refusing_redis_url(),
        REDIS_TIMEOUT_SECONDS="1",
        STREAM_RESYNC_SECONDS=str(RESYNC_SECONDS),
    ),
}


def start_all(processes: list[Any]) -> None:
    """Starts LiveServers (or anything with start()) side by side; all or none."""
    with ThreadPoolExecutor(max_workers=max(len(processes), 1)) as pool:
        futures = [pool.submit(p.start) for p in processes]
        errors = [f.exception() for f in futures]
    failed = [e for e in errors if e is not None]
    if failed:
        for p in processes:
            p.stop()
        raise failed[0]


def stop_all(processes: list[Any]) -> None:
    """Stops LiveServers (or anything with stop()) side by side."""
    with ThreadPoolExecutor(max_workers=max(len(processes), 1)) as pool:
        for future in [pool.submit(p.stop) for p in processes]:
            future.result()


@contextmanager
def clean_shutdown(paths: list[Path]) -> Iterator[None]:
    """Wraps stopping processes: what they log while stopping must show no traceback either."""
    sizes = {path: path.stat().st_size if path.exists() else 0 for path in paths}
    yield
    for path in paths:
        with path.open("rb") as log:
            log.seek(sizes[path])
            new = log.read().decode(errors="replace")
        assert "Traceback" not in new, f"{path} logged a traceback while stopping:\n{new[-4000:]}"


def log_tail(server: LiveServer, chars: int = 3000) -> str:
    return server.log_path.read_text(errors="replace")[-chars:]


WATCHED_LOGS: list[Path] = []  # logs of every process started for these tests
RUNNING: list[Any] = []  # long-lived processes (servers, workers) shared by several tests
LOCK_GRACE = 3.0  # no write transaction of the app should keep SQLite locked this long


def sqlite_write_lock_free(database_url: str, within: float) -> bool:
    """Whether a write transaction can start on the SQLite file within `within` seconds."""
    path = database_url.split("///", 1)[1]
    connection = sqlite3.connect(path, timeout=within, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


@pytest.fixture(autouse=True)
def database_not_left_locked(database_url: str) -> Iterator[None]:
    """With SQLite, a server that keeps the write lock after a test leaves every later writer
    (the app's and this suite's own cleanup) waiting and failing. Such a test fails here, and the
    shared servers are restarted so the tests after it start from a usable database."""
    yield
    if not database_url.startswith("sqlite") or sqlite_write_lock_free(database_url, LOCK_GRACE):
        return
    running = [p for p in RUNNING if p.process is not None and p.process.poll() is None]
    stop_all(running)  # a stopped process holds no lock
    start_all(running)
    raise AssertionError(
        f"the database was still write-locked {LOCK_GRACE} s after this test ended; "
        f"restarted {len(running)} server processes to release it"
    )


@pytest.fixture(autouse=True)
def no_new_tracebacks() -> Iterator[None]:
    """A traceback a server logs during a test fails that test (at teardown), even when the
    client saw nothing wrong: an exception in a stream, a job, a request nobody waited for."""
    sizes = {path: path.stat().st_size if path.exists() else 0 for path in WATCHED_LOGS}
    yield
    for path in WATCHED_LOGS:
        if not path.exists():
            continue
        with path.open("rb") as log:
            log.seek(sizes.get(path, 0))
            new = log.read().decode(errors="replace")
        assert "Traceback" not in new, f"{path} logged a traceback during this test:\n{new[-4000:]}"


@pytest.fixture(autouse=True)
async def jobs_settled(engine: Any, no_new_tracebacks: None) -> AsyncIterator[None]:
    """After no_new_tracebacks's check (so torn down before it) and before the database is emptied: the
    jobs this test started have ended, and what they logged is this test's."""
    yield
    await wait_for_live_jobs(engine)


@pytest.fixture(autouse=True)
async def fresh_user_ids(engine: Any) -> None:
    """The servers outlive each test and keep state by user id (open streams per user, for the
    connection cap); the database is emptied after every test, so ids would repeat and one test's
    leftovers would count against the next. Each test's users get ids from a block of their own."""
    start = next(_id_blocks) * ID_BLOCK
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT setval(pg_get_serial_sequence('users', 'id'), :start)"), {"start": start})
        else:  # SQLite hands out max(id) + 1: a placeholder account moves it
            await conn.execute(
                insert(User).values(
                    id=start,
                    email=f"placeholder{start}@example.invalid",
                    name="placeholder",
                    password_hash="!",
                    timezone="UTC",
                    role="member",
                    created_at=utcnow(),
                )
            )


@pytest.fixture(scope="package")
def fleet(request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Every server of SERVERS that a selected test uses, started in parallel."""
    wanted = sorted(
        {name for item in request.session.items for name in getattr(item, "fixturenames", ())} & set(SERVERS)
    )
    folder = tmp_path_factory.mktemp("servers")
    servers = {name: LiveServer(SERVERS[name](database_url), folder / f"{name}.log") for name in wanted}
    WATCHED_LOGS.extend(live.log_path for live in servers.values())
    RUNNING.extend(servers.values())
    start_all(list(servers.values()))
    try:
        yield servers
    finally:
        with clean_shutdown([live.log_path for live in servers.values()]):
            stop_all(list(servers.values()))


@pytest.fixture(scope="package")
def server(fleet: dict[str, LiveServer]) -> LiveServer:
    return fleet["server"]


@pytest.fixture(scope="package")
def lifetime_server(fleet: dict[str, LiveServer]) -> LiveServer:
    return fleet["lifetime_server"]


@pytest.fixture(scope="package")
def resync_server(fleet: dict[str, LiveServer]) -> LiveServer:
    return fleet["resync_server"]


@pytest.fixture(scope="package")
def unreachable_redis_server(fleet: dict[str, LiveServer]) -> LiveServer:
    return fleet["unreachable_redis_server"]


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@dataclass(frozen=True)
class Account:
    id: int
    token: str
    email: str


async def register(http: httpx.AsyncClient) -> Account:
    n = next(_emails)
    response = await http.post(
        "/api/v1/auth/register",
        json={
            "email": f"reliability{n}@example.com",
            "password": DEFAULT_PASSWORD,
            "name": f"Reader {n}",
            "timezone": "UTC",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(int(body["user"]["id"]), body["token"], body["user"]["email"])


async def register_admin(http: httpx.AsyncClient, session: AsyncSession) -> Account:
    admin = await register(http)
    await session.execute(update(User).where(User.id == admin.id).values(role="admin"))
    await session.commit()
    return admin


def bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.token}"}


async def announce(http: httpx.AsyncClient, admin: Account, title: str, body: str = "") -> None:
    """One `general` notification to every user, through the server."""
    response = await http.post("/api/v1/announcements", json={"title": title, "body": body}, headers=bearer(admin))
    assert response.status_code == 202, response.text


async def add_notifications(session: AsyncSession, user_id: int, count: int, prefix: str = "stored") -> None:
    """Notifications committed from this process: in the database; rings only a doorbell set here."""
    await NotificationService(session).notify_many(
        [NewNotification(user_id=user_id, type="general", title=f"{prefix} {i}") for i in range(count)]
    )
    await session.commit()


async def inbox_seq(http: httpx.AsyncClient, account: Account) -> int:
    response = await http.get("/api/v1/notifications/unread_count", headers=bearer(account))
    assert response.status_code == 200, response.text
    return int(response.json()["seq"])


async def wait_for_seq(http: httpx.AsyncClient, account: Account, seq: int, within: float = 30.0) -> float:
    """Waits until the user's inbox has reached `seq` (background fan-out); returns the wait."""
    started = time.monotonic()
    while (current := await inbox_seq(http, account)) < seq:
        if time.monotonic() - started > within:
            raise AssertionError(f"inbox at seq {current}, not {seq}, after {within} s")
        await asyncio.sleep(0.05)
    assert current == seq, f"inbox at seq {current}: more notifications than the {seq} expected"
    return time.monotonic() - started


def seqs(events: list[Any]) -> list[int]:
    return [int(e.id) for e in events]
