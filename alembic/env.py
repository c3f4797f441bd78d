"""Alembic runs migrations with the app's own engine factory and settings."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from sqlalchemy.engine import Connection

from alembic import context
from webapp.db import Base, create_engine
from webapp.settings import get_settings
from webapp.tables import import_all_models

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

import_all_models()
target_metadata = Base.metadata


def database_url() -> str:
    return config.attributes.get("database_url") or get_settings().database_url


def report_step(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    """Tells `tidings db upgrade` (config.attributes["on_migration"]) each revision it applied."""
    report = config.attributes.get("on_migration")
    if report is not None and step.is_upgrade:
        report(step.up_revision_id)


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        on_version_apply=report_step,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(database_url())
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_async_migrations())
