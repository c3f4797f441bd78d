"""A pooled PostgreSQL connection whose server side is gone (a database restart, a failover, an
administrator's pg_terminate_backend) is never handed to a request: the pool replaces it at
checkout, and the next read and write work as if nothing happened."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from tests.services import throwaway_postgres_database
from webapp.db import create_engine, create_reader_engine, create_sessionmaker
from webapp.settings import DatabaseTimeouts

# PostgreSQL in both CI legs: this is the pool of the PostgreSQL engine, which SQLite has not.
POSTGRES = os.environ.get("TIDINGS_TEST_DATABASE_URL", "")
BASE_URL = POSTGRES if POSTGRES.startswith("postgresql") else "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POOLED = 4


async def scalar(engine: Any, sql: str, pids: list[int]) -> Any:
    async with engine.connect() as connection:
        return await connection.scalar(text(sql), {"p": pids})


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with throwaway_postgres_database(BASE_URL) as url:
        yield url


async def test_connections_the_server_closed_are_replaced_at_checkout(postgres_url: str) -> None:
    url = postgres_url
    engine = create_engine(url)
    reader = create_reader_engine(engine, url, DatabaseTimeouts())
    admin = create_engine(url)
    try:
        held = [await engine.connect() for _ in range(POOLED)]
        pids = {(await c.execute(text("SELECT pg_backend_pid()"))).scalar_one() for c in held}
        for connection in held:
            await connection.close()  # back to the pool, alive as far as it knows
        terminate = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid = ANY(:p)"
        assert await scalar(admin, terminate, list(pids)) == POOLED
        for _ in range(100):  # until the backends have exited (each poll its own statistics snapshot)
            if not await scalar(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)", list(pids)):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the terminated backends did not exit")
        await asyncio.sleep(0.1)  # and this loop has read them on the idle pooled connections

        for _ in range(POOLED):  # every pooled connection is a dead one: each read is served
            async with reader.connect() as connection:
                pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                assert pid not in pids
        async with create_sessionmaker(engine)() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
            await session.commit()
    finally:
        for each in (engine, reader, admin):
            await each.dispose()
