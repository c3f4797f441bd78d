"""Shared fixtures: one migrated database per test run (SQLite file, or a throwaway
PostgreSQL database when TIDINGS_TEST_DATABASE_URL points at a server), emptied between tests."""

from __future__ import annotations

import asyncio
import faulthandler
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tests.services import throwaway_postgres_database
from tidings.app import create_app
from tidings.cli import upgrade_database
from webapp.db import Base, create_engine, create_sessionmaker
from webapp.outbox.models import OutboxMessage
from webapp.settings import Settings, load_settings
from webapp.tables import import_all_models

TEST_SECRET = "test-secret-key-with-plenty-of-entropy-0123456789"
DEFAULT_PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get("TIDINGS_TEST_DATABASE_URL", "")
    if base.startswith("postgresql"):
        with throwaway_postgres_database(base) as url:
            upgrade_database(url)
            yield url
        return
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'tidings.db'}"
    upgrade_database(url)
    yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": TEST_SECRET,
            "LOG_LEVEL": "WARNING",
            # Suites sign up and invite many people from one address: a test of those limits sets its own.
            "REGISTRATIONS_PER_HOUR": "1000000",
            "INVITATIONS_PER_HOUR": "1000000",
            # Development email goes to a folder: the tests' own, not the developer's var/mail.
            "MAIL_DIR": str(tmp_path_factory.mktemp("mail")),
        }
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def clean_database(engine: Any) -> AsyncIterator[None]:
    yield
    import_all_models()
    # Jobs a test queued in this process's in-memory broker and no worker took before its app
    # stopped would run in the next test's app, with ids the emptied tables hand out again (a
    # process of its own loses them the same way; its outbox rows are gone with the data).
    if isinstance(dramatiq.get_broker(), StubBroker):
        dramatiq.get_broker().flush_all()
    # A job or hand-over the test started may still be writing: on PostgreSQL the TRUNCATE can
    # then lose a deadlock with it, and simply runs again.
    for attempt in range(5):
        try:
            async with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
                    await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                else:
                    for table in reversed(Base.metadata.sorted_tables):
                        await conn.execute(delete(table))
            return
        except DBAPIError as exc:
            if "database is locked" in str(exc):
                _show_who_holds_the_lock()
            if "deadlock" not in str(exc) or attempt == 4:
                raise
            await asyncio.sleep(0.5)


def _show_who_holds_the_lock() -> None:
    """Something in this process kept SQLite's write lock past its test: every later test would
    fail the same way, so the log shows every thread and task that could be holding it."""
    sys.stderr.write("\n== the SQLite write lock is held after a test: threads and tasks of this process ==\n")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    for task in asyncio.all_tasks():
        task.print_stack(limit=8, file=sys.stderr)


JOBS_SETTLE_SECONDS = 10.0


async def wait_for_live_jobs(engine: Any, within: float = JOBS_SETTLE_SECONDS) -> None:
    """Waits (at most `within` seconds) until no outbox row waits for its job. A live server
    outlives the test: a job the test started (an announcement's fan-out) may still be running
    when the database is emptied, and would then write rows that point at deleted ones."""
    deadline = asyncio.get_running_loop().time() + within
    pending = (
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.completed_at.is_(None), OutboxMessage.failed_at.is_(None))
    )
    while asyncio.get_running_loop().time() < deadline:
        async with engine.connect() as conn:
            if not await conn.scalar(pending):
                return
        await asyncio.sleep(0.1)


# The test's own sessions, open until its fixtures are torn down.
_test_sessions: list[AsyncSession] = []


@pytest.fixture
async def session(engine: Any) -> AsyncIterator[AsyncSession]:
    async with create_sessionmaker(engine)() as session:
        _test_sessions.append(session)
        yield session
    _test_sessions.remove(session)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8000") as client:
        client.follow_redirects = False  # tests look at redirects themselves
        yield client
        # The test is over: end its own session's transaction before the app stops. On SQLite an
        # open one holds the write lock, and the app's shutdown waits for its scheduler's tick,
        # which would wait the whole busy timeout (5 s per test) for that lock.
        for session in _test_sessions:
            await session.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but never listening, standing in for a database or a Redis that is down:
    every connection to it is refused at once, and nothing else can start answering there while
    the test runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).parent / "e2e" / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path
