"""Database engine, sessions and the declarative base.

SQLite (the default) runs with WAL and a busy timeout, and every transaction starts with
BEGIN IMMEDIATE: a transaction that reads and then writes would otherwise fail at once with
SQLITE_BUSY when another writer committed in between, which busy_timeout cannot wait out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_engine(database_url: str, *, readers_only: bool = False, **kwargs: Any) -> AsyncEngine:
    """`readers_only`: an engine for code that never writes (the streams). On SQLite its
    transactions begin deferred, so a reader never holds the write lock."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine, "BEGIN" if readers_only else "BEGIN IMMEDIATE")
        return engine
    return create_async_engine(database_url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: AsyncEngine, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # The engine rides along in session.info so after-commit hooks (outbox) can open their own session.
    return async_sessionmaker(engine, expire_on_commit=False, info={"engine": engine})


async def session_scope(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        try:
            yield session
        finally:
            await session.rollback()


def import_all_models() -> None:
    """Registers every table on Base.metadata (for Alembic and tests)."""
    from webapp.auth import models as _auth  # noqa: F401
    from webapp.bookings import models as _bookings  # noqa: F401
    from webapp.events import models as _events  # noqa: F401
    from webapp.groups import models as _groups  # noqa: F401
    from webapp.notifications import models as _notifications  # noqa: F401
    from webapp.outbox import models as _outbox  # noqa: F401
    from webapp.payments import models as _payments  # noqa: F401
    from webapp.reminders import models as _reminders  # noqa: F401
    from webapp.reviews import models as _reviews  # noqa: F401
