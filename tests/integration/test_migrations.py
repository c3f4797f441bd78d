"""The migrations build exactly the schema the models describe, and the newest one can be undone
and done again, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from alembic import command
from tests.services import PROJECT_ROOT, throwaway_postgres_database
from tidings.cli import upgrade_database
from webapp.db import Base, create_engine
from webapp.tables import import_all_models


def differences(connection: Any) -> list[Any]:
    import_all_models()
    context = MigrationContext.configure(connection, opts={"compare_type": True, "render_as_batch": True})
    return list(compare_metadata(context, Base.metadata))


async def test_the_migrated_schema_is_the_models_schema(engine) -> None:
    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


@pytest.fixture
def scratch_database(tmp_path: Path) -> Iterator[str]:
    """An empty database of the kind under test, of this test's own."""
    base = os.environ.get("TIDINGS_TEST_DATABASE_URL", "")
    if base.startswith("postgresql"):
        with throwaway_postgres_database(base) as url:
            yield url
        return
    yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"


def test_the_newest_migration_downgrades_and_upgrades_again(scratch_database: str) -> None:
    """Synchronous: Alembic runs its own event loop (alembic/env.py)."""
    upgrade_database(scratch_database)
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = scratch_database
    config.attributes["configure_logger"] = False
    command.downgrade(config, "-1")
    assert upgrade_database(scratch_database), "the newest migration applies again"

    async def compare() -> list[Any]:
        engine = create_engine(scratch_database)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(differences)
        finally:
            await engine.dispose()

    assert asyncio.run(compare()) == []
