"""Shared integration fixtures: cheap password hashing, and the app behind a real server for races.

Registrations hash passwords with cheap argon2 parameters.

Password hashing strength is not what these tests prove, and the default parameters cost ~0.3 s
per registration. Hashes stay real argon2 hashes, so logging in still verifies them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from argon2 import PasswordHasher

import webapp.auth.services as auth_services
from tests.api import register
from tests.services import free_port
from webapp.realtime.doorbell import LocalDoorbell, current_doorbell, set_doorbell


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_services, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
async def users(client) -> tuple[int, int]:
    """Two registered users' ids."""
    first, _ = await register(client)
    second, _ = await register(client)
    return first["id"], second["id"]


@pytest.fixture
def doorbell() -> Iterator[LocalDoorbell]:
    """An in-process doorbell for the test, so it can subscribe to what services ring."""
    previous = current_doorbell()
    bell = LocalDoorbell()
    set_doorbell(bell)
    yield bell
    set_doorbell(previous)


@pytest.fixture
async def in_process_server(app) -> AsyncIterator[str]:
    """The test app behind a real uvicorn server in this process, so requests truly overlap and the
    test can swap the payment gateway (the AsyncTestClient runs requests one after another)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none"))
    task = asyncio.create_task(server.serve())
    for _ in range(300):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        # Longer than the app's own worst-case shutdown (embedded jobs 30 s, then the tasks left
        # on their loop 15 s): a shutdown cancelled half-way leaves the engines undisposed, and a
        # hand-over caught inside its UPDATE keeps SQLite's write lock for the rest of the run.
        await asyncio.wait_for(task, timeout=60)
