"""A `dramatiq jobs` worker killed (SIGKILL) while it sends an email, another started: what the
mail server ends up with. Real processes (scheduler, workers), real Redis, a real SMTP server on
a real socket, run by this test so it can hold the conversation at the moment it wants.

- Killed before the server had the message (held at RCPT): the email arrives exactly once.
- Killed at the worst moment, after the server accepted the message (250) and before the worker
  recorded it (its UPDATE is held by a lock this test takes): the email arrives a second time,
  with the same Message-ID, and never a third. This is the guarantee README ("Email") states:
  SMTP has no two-phase commit, so a crash in that window can repeat a message, never lose one.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.engine import make_url

from tests.conftest import TEST_SECRET
from tests.crowd import UNUSABLE_PASSWORD_HASH
from tests.services import LiveScheduler, LiveWorker, free_port, scaled_env
from webapp.auth.models import User
from webapp.notifications.services import NewNotification, NotificationService

ROWS_SQL = "SELECT id, outcome FROM offsite_deliveries WHERE channel = 'email'"


class HoldingServer:
    """Accepts mail, but holds the conversation at `hold_at` ("rcpt" or "data") until released."""

    def __init__(self, hold_at: str) -> None:
        self.hold_at = hold_at
        self.held = threading.Event()
        self.release = threading.Event()
        self.accepted: list[EmailMessage] = []

    async def _hold(self, stage: str) -> None:
        if stage == self.hold_at and not self.held.is_set():
            self.held.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        await self._hold("rcpt")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        await self._hold("data")
        self.accepted.append(message)  # what a real server would now deliver
        return "250 Message accepted for delivery"


@pytest.fixture
def holding_server(request: pytest.FixtureRequest) -> Iterator[tuple[HoldingServer, int]]:
    handler = HoldingServer(request.param)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        handler.release.set()
        controller.stop()


async def rows(database_url: str) -> list[tuple[int, str | None]]:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database or "", isolation_level=None) as conn:
            return [(int(a), b) for a, b in conn.execute(ROWS_SQL).fetchall()]
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [(r["id"], r["outcome"]) for r in await conn.fetch(ROWS_SQL)]
    finally:
        await conn.close()


class RowLock:
    """Holds the delivery rows' write lock, as a slow transaction would: the worker's UPDATE that
    records the email as sent waits behind it."""

    def __init__(self, database_url: str) -> None:
        self.url = make_url(database_url)
        self.database_url = database_url
        self.sqlite: sqlite3.Connection | None = None
        self.pg: Any = None

    async def take(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            self.sqlite = sqlite3.connect(self.url.database or "", isolation_level=None)
            self.sqlite.execute("BEGIN IMMEDIATE")
            return
        self.pg = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        await self.pg.execute("BEGIN")
        await self.pg.execute("SELECT id FROM offsite_deliveries FOR UPDATE")

    async def give_back(self) -> None:
        if self.sqlite is not None:
            self.sqlite.execute("ROLLBACK")
            self.sqlite.close()
        if self.pg is not None:
            await self.pg.execute("ROLLBACK")
            await self.pg.close()


async def wait_for(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def a_booking_confirmation(session: Any) -> None:
    user = User(email="ada@example.com", name="Ada", password_hash=UNUSABLE_PASSWORD_HASH)
    session.add(user)
    await session.flush()
    await NotificationService(session).notify(
        NewNotification(user_id=user.id, type="booking_confirmed", title="Booking confirmed: Gala", url="/bookings")
    )
    await session.commit()


@pytest.fixture
async def deployment(
    database_url: str, session: Any, tmp_path: Path, holding_server: tuple[HoldingServer, int]
) -> AsyncIterator[tuple[HoldingServer, LiveWorker, LiveWorker]]:
    """A booking confirmation due by email, a scheduler and a first worker running; a second
    worker ready to start. Yields (server, first worker, second worker)."""
    server, port = holding_server
    await a_booking_confirmation(session)
    env = {
        **scaled_env(database_url, TEST_SECRET),
        "SMTP_URL": f"smtp://127.0.0.1:{port}",
        "SMTP_TIMEOUT_SECONDS": "1",  # an attempt's lease: 14 s
        "SCHEDULER_INTERVAL_SECONDS": "1",
        "OUTBOX_GRACE_SECONDS": "1",
        "OUTBOX_REDELIVER_SECONDS": "2",
        "JOBS_MIN_BACKOFF_MS": "200",
        "JOBS_MAX_BACKOFF_MS": "2000",
    }
    scheduler = LiveScheduler(env=env, log_path=tmp_path / "scheduler.log")
    first = LiveWorker(env=env, log_path=tmp_path / "worker-1.log", threads=1)
    second = LiveWorker(env=env, log_path=tmp_path / "worker-2.log", threads=1)
    scheduler.start()
    first.start()
    try:
        yield server, first, second
    finally:
        first.kill()
        second.stop()
        scheduler.stop()


@pytest.mark.parametrize("holding_server", ["rcpt"], indirect=True)
async def test_a_worker_killed_before_the_server_had_the_email_sends_it_exactly_once(database_url, deployment):
    server, first, second = deployment
    await wait_for(lambda: asyncio.to_thread(server.held.wait, 0.1), 60, "the worker to reach RCPT")
    first.kill()
    server.release.set()
    second.start()
    await wait_for(lambda: _sent(database_url), 60, "the email to be recorded as sent")
    await asyncio.sleep(3)  # any further redelivery must add nothing
    assert [m["Subject"] for m in server.accepted] == ["Booking confirmed: Gala"]


@pytest.mark.parametrize("holding_server", ["data"], indirect=True)
async def test_a_worker_killed_after_the_server_accepted_sends_it_again_with_the_same_message_id(
    database_url, deployment
):
    server, first, second = deployment
    lock = RowLock(database_url)
    await wait_for(lambda: asyncio.to_thread(server.held.wait, 0.1), 60, "the worker to send the message")
    await lock.take()  # the worker's "sent" UPDATE will wait behind this
    server.release.set()  # 250: the server has it
    await wait_for(lambda: _accepted(server, 1), 10, "the server to accept")
    await asyncio.sleep(1.0)  # the worker now waits on the lock, its email accepted, not recorded
    first.kill()
    await lock.give_back()
    assert [outcome for _, outcome in await rows(database_url)] == [None]
    second.start()
    await wait_for(lambda: _sent(database_url), 90, "the email to be recorded as sent")
    await asyncio.sleep(3)  # any further redelivery must add nothing
    assert len(server.accepted) == 2
    assert server.accepted[0]["Message-ID"] == server.accepted[1]["Message-ID"]
    assert [m["Subject"] for m in server.accepted] == ["Booking confirmed: Gala"] * 2


async def _sent(database_url: str) -> bool:
    return [outcome for _, outcome in await rows(database_url)] == ["sent"]


async def _accepted(server: HoldingServer, count: int) -> bool:
    return len(server.accepted) >= count
