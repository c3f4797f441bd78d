"""Database engine, sessions, the unit of work's error classes, and the declarative base.

SQLite (the default) runs with WAL and a busy timeout. Writing transactions start with
BEGIN IMMEDIATE: a transaction that reads and then writes would otherwise fail at once with
SQLITE_BUSY when another writer committed in between, which busy_timeout cannot wait out.
Read-only work (GET requests, streams) uses a second engine whose transactions begin
deferred, so a reader never holds or waits for the write lock.

Every engine has timeouts: connecting, waiting for a pooled connection, and each statement.
A database that hangs answers a request with 503 within a few seconds instead of holding it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, TypeDecorator, any_, event, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from webapp import metrics
from webapp.settings import DatabaseTimeouts

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# The largest id a row can have (PostgreSQL `integer`): a bigger one in a request is bad input.
MAX_ROW_ID = 2**31 - 1
T = TypeVar("T")
log = logging.getLogger("tidings.db")


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


def create_engine(
    database_url: str,
    *,
    readers_only: bool = False,
    timeouts: DatabaseTimeouts = DatabaseTimeouts(),  # noqa: B008 - frozen, so safe as a default
    **kwargs: Any,
) -> AsyncEngine:
    """`readers_only`: an engine for code that never writes (GET requests, the streams). On
    SQLite it sends no BEGIN at all: each statement reads its own snapshot, as every statement
    does under PostgreSQL's READ COMMITTED, so no read relies on more; it never holds the write
    lock, and each read session saves the BEGIN's round trip to SQLite's thread (13 % of an API
    read's CPU, bench/run.py)."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": timeouts.statement_seconds}, **kwargs)
        _configure_sqlite(engine, None if readers_only else "BEGIN IMMEDIATE", timeouts)
    else:
        engine = _postgresql_engine(database_url, timeouts, **kwargs)
    event.listen(engine.sync_engine, "handle_error", _count_error)
    _count_connect_failures(engine)
    return engine


def create_reader_engine(engine: AsyncEngine, database_url: str, timeouts: DatabaseTimeouts) -> AsyncEngine:
    """The engine of reads (GET requests, the streams, the auth lookup): each statement is its own
    snapshot, which is all READ COMMITTED gives a statement anyway, so no read sends a BEGIN or a
    ROLLBACK. On SQLite that is an engine of its own (`readers_only`: no BEGIN, so reads never
    take the write lock); on PostgreSQL the writers' pool in AUTOCOMMIT (two round trips fewer
    per read session: a quarter of a reconnect storm's reads, bench/run.py)."""
    if database_url.startswith("sqlite"):
        return create_engine(database_url, readers_only=True, timeouts=timeouts)
    return engine.execution_options(isolation_level="AUTOCOMMIT")


# Below the idle timeouts of common NATs and load balancers (4 minutes and more), so none of them
# silently drops a pooled connection; a reconnect every 3 minutes per connection costs nothing.
POOL_RECYCLE_SECONDS = 180


def _postgresql_engine(database_url: str, timeouts: DatabaseTimeouts, **kwargs: Any) -> AsyncEngine:
    statement_ms = str(int(timeouts.statement_seconds * 1000))
    engine = create_async_engine(
        database_url,
        pool_recycle=POOL_RECYCLE_SECONDS,
        pool_timeout=timeouts.connect_seconds,
        connect_args={
            "timeout": timeouts.connect_seconds,
            # The server cancels a statement or a lock wait that takes too long; the client gives
            # up a little later on a server that stopped answering at all.
            "command_timeout": timeouts.statement_seconds + 1,
            "server_settings": {"statement_timeout": statement_ms, "lock_timeout": statement_ms},
        },
        **kwargs,
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection the server closed (a restart, a failover, pg_terminate_backend) is
    replaced at checkout, as SQLAlchemy's pool does when a checkout listener raises this. The
    driver learns of the close when the server's goodbye arrives on the idle socket, so this asks
    it without a round trip: `pool_pre_ping` began a transaction, pinged and rolled back on every
    checkout, 13 % of an API read's GIL time on PostgreSQL (py-spy, bench/run.py). A connection
    cut without a goodbye (a NAT or load balancer forgetting an idle one) is not seen here: the
    pool renews every connection after POOL_RECYCLE_SECONDS, below the usual idle cut-offs, and
    one cut anyway fails its request with a 503 and has the pool renew every connection."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def error_kind(exc: BaseException) -> str:
    """The bounded label a database error is counted under (metrics.DATABASE_ERROR_KINDS)."""
    if is_retryable(exc):
        return "conflict"
    if is_unavailable(exc):
        return "unavailable"
    if isinstance(exc, IntegrityError):
        return "integrity"
    if isinstance(exc, DataError):
        return "data"
    return "other"


def _count_error(context: ExceptionContext) -> None:
    """Every error the engine sees, counted by kind. A task cancelled mid-query (a client that
    left) is no database error."""
    if not isinstance(context.original_exception, Exception):  # CancelledError, KeyboardInterrupt
        return
    if context.is_disconnect and context.sqlalchemy_exception is None:
        kind = "unavailable"
    else:
        kind = error_kind(context.sqlalchemy_exception or context.original_exception)
    metrics.DATABASE_ERRORS.labels(kind).inc()


def _count_connect_failures(engine: AsyncEngine) -> None:
    """A connection refused or timed out while connecting reaches the caller as the driver's own
    OSError or TimeoutError, which never passes `handle_error`: counted here, as unavailable.
    (Errors the driver reports as its database errors do pass `handle_error`, and are counted
    there only.)"""
    dialect = engine.sync_engine.dialect
    connect = dialect.connect

    def counted_connect(*args: Any, **kwargs: Any) -> Any:
        try:
            return connect(*args, **kwargs)
        except Exception as exc:
            if not isinstance(exc, dialect.loaded_dbapi.Error):
                metrics.DATABASE_ERRORS.labels("unavailable").inc()
            raise

    dialect.connect = counted_connect  # type: ignore[method-assign]


def _configure_sqlite(engine: AsyncEngine, begin: str | None, timeouts: DatabaseTimeouts) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(timeouts.statement_seconds * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    if begin is not None:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)


def on_postgresql(session: AsyncSession) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite, the only other database here)."""
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def among(session: AsyncSession, column: Any, values: Iterable[Any]) -> Any:
    """`column IN values`. On PostgreSQL as `column = ANY(:values)`, one bound array: `IN` renders
    a typed parameter per value into the statement on every execution (a third of a fan-out's
    SQLAlchemy time for chunks of 1,000), and each length of list makes a new statement that the
    driver prepares again (bench/fanout.py, bench/preferences_plan.py)."""
    values = list(values)
    if on_postgresql(session):
        return column == any_(literal(values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def insert_on_conflict(session: AsyncSession) -> Any:
    """`insert` in the session's dialect: both have ON CONFLICT, under their own constructs."""
    return postgresql.insert if on_postgresql(session) else sqlite.insert


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # The engine rides along in session.info so after-commit hooks (outbox) can open their own session.
    return async_sessionmaker(engine, expire_on_commit=False, info={"engine": engine})


# PostgreSQL SQLSTATEs worth running the whole unit of work again for.
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
# The database did not answer in time or cannot be reached: 503, not 500.
UNAVAILABLE_SQLSTATES = {"57014", "55P03", "57P01", "57P03", "53300"}


def is_retryable(exc: BaseException) -> bool:
    """A conflict between transactions that a second attempt is expected to get through: a
    deadlock or serialization failure (PostgreSQL). A SQLite write lock that stayed busy has
    already been waited for (busy_timeout), so it is answered as unavailable instead."""
    if not isinstance(exc, DBAPIError):
        return False
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def is_unavailable(exc: BaseException) -> bool:
    """The database is down, hung or overloaded: the request could not be served right now."""
    if isinstance(exc, (PoolTimeoutError, TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, DBAPIError):
        return (
            exc.connection_invalidated
            or getattr(exc.orig, "sqlstate", None) in UNAVAILABLE_SQLSTATES
            or "database is locked" in str(exc.orig)
        )
    return False


_finishing: set[asyncio.Task[Any]] = set()  # reads whose caller left: held until they end


async def finished_even_if_left(read: Awaitable[T]) -> T:
    """Runs a short read to its end even if its caller is cancelled (a client that left): a
    cancelled query could hand its connection back to the pool mid-transaction. What the read
    comes to after its caller left is no one's news: its failure is one line in the log, not a
    traceback of an exception never retrieved."""
    task = asyncio.ensure_future(read)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        _finishing.add(task)
        task.add_done_callback(_forget_finished)
        raise


def _forget_finished(task: asyncio.Task[Any]) -> None:
    _finishing.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.info("a read failed after its caller left: %s", type(exc).__name__)
