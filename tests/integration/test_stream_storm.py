"""A reconnect storm (issue 12): every user's stream opens at once, as after a deploy or a
network blip. Each opening reads the inbox's state from the database; with more openings than
pooled connections, the rest must wait their turn, not fail. On PostgreSQL a request waits for a
pooled connection at most DB_CONNECT_TIMEOUT_SECONDS (then 503: the database is unavailable), so
without a queue of their own the openings beyond the pool's size timed out and their streams
ended after their first byte (bench/run.py saw 200 of 1,000)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
import uvicorn
from sqlalchemy import insert, select

from tests.conftest import TEST_SECRET
from tests.services import free_port
from tidings.app import create_app
from webapp.auth.models import User
from webapp.auth.tokens import issue_access_token

STREAMS = 600


@pytest.fixture
async def impatient_server(settings):
    """The app with a pool that gives up after 1 s, behind a real server in this process."""
    app = create_app(replace(settings, db_connect_timeout_seconds=1.0))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none", backlog=STREAMS * 2)
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=60)  # beyond the app's own shutdown grace (conftest.py)


async def test_every_stream_of_a_storm_opens_with_its_state(impatient_server, session):
    await session.execute(
        insert(User),
        [
            {"email": f"storm{i}@example.com", "name": f"S{i}", "password_hash": "!", "timezone": "UTC"}
            for i in range(STREAMS)
        ],
    )
    await session.commit()
    user_ids = list(await session.scalars(select(User.id).where(User.email.like("storm%"))))
    await session.rollback()

    async def open_stream(http: httpx.AsyncClient, user_id: int) -> str:
        token = issue_access_token(user_id, TEST_SECRET, timedelta(minutes=5), uuid.uuid4().hex)
        try:
            async with http.stream(
                "GET", "/api/v1/notifications/stream", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                if response.status_code != 200:
                    return f"status {response.status_code}"
                async for line in response.aiter_lines():
                    if line == "event: notification_count":
                        return "live"
        except httpx.RemoteProtocolError:
            pass  # cut off mid-body: its opening read failed
        return "ended before its state"

    limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=impatient_server, timeout=60, limits=limits) as http:
        # A process that has served a while holds its pool's connections: the storm is about
        # waiting for them, not about connecting to the database under a full event loop.
        warm = issue_access_token(user_ids[0], TEST_SECRET, timedelta(minutes=5), uuid.uuid4().hex)
        reads = [
            http.get("/api/v1/notifications/unread_count", headers={"Authorization": f"Bearer {warm}"})
            for _ in range(5)
        ]
        assert {response.status_code for response in await asyncio.gather(*reads)} == {200}
        outcomes = await asyncio.gather(*(open_stream(http, uid) for uid in user_ids))
    failed = [o for o in outcomes if o != "live"]
    assert failed == [], f"{len(failed)} of {STREAMS}: {sorted(set(failed))}"
