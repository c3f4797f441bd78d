"""What one authenticated request reads (issue 12): a verified access token says who is calling,
so no request reads the user's row just to know that; the row is read where something of it is
shown or checked (a page's header, an admin's guard, the profile), once, in the request's own
database session. Every statement costs a round trip to the database (on SQLite, several hops to
its thread), and these are the cost of an API read and of a stream opening."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event, select, update

from tests.api import bearer, register
from tests.conftest import TEST_SECRET
from webapp.auth.models import User
from webapp.auth.tokens import issue_access_token
from webapp.db import create_engine, create_reader_engine, create_sessionmaker
from webapp.logs import request_id
from webapp.settings import DatabaseTimeouts


@contextmanager
def statements_run(app: Any) -> Iterator[list[str]]:
    """The statements requests run on the app's engines (two on SQLite; on PostgreSQL one pool, the
    readers' engine a view of the writers' in AUTOCOMMIT, whose statements both listeners hear);
    the embedded scheduler's, which carry no request id, are not counted."""
    engines = {maker.kw["info"]["engine"] for maker in (app.state.sessionmaker, app.state.reader_sessionmaker)}
    statements: list[str] = []
    heard: list[object] = []  # the execution context of the last statement recorded

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if request_id.get() and not (heard and heard[-1] is context):
            heard[:] = [context]
            statements.append(" ".join(statement.split()))

    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine.sync_engine, "before_cursor_execute", record)


def reading_users(statements: list[str]) -> list[str]:
    return [s for s in statements if "FROM users" in s]


async def register_over_http(http: httpx.AsyncClient, email: str) -> str:
    """A new account's access token, through the live server's API."""
    registered = await http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": "correct horse battery", "name": email[0].upper(), "timezone": "UTC"},
    )
    return str(registered.json()["token"])


async def read_until_the_count(response: httpx.Response) -> None:
    """Reads a stream up to its opening's count: the opening state has been read and sent."""
    lines = response.aiter_lines()
    while "notification_count" not in await anext(lines):
        pass


async def test_an_api_read_runs_one_statement_and_reads_no_user_row(client, app):
    _, token = await register(client)
    with statements_run(app) as statements:
        response = await client.get("/api/v1/notifications/unread_count", headers=bearer(token))
    assert response.status_code == 200 and response.json() == {"unread_count": 0, "seq": 0, "version": 0}
    assert reading_users(statements) == []
    # The count and the position in one statement, and no BEGIN before it (SQLite's readers send
    # none: the statement is its own snapshot, as under PostgreSQL's READ COMMITTED).
    assert len(statements) == 1, statements


async def test_a_stream_opens_without_reading_the_user_row(in_process_server, app):
    async with httpx.AsyncClient(base_url=in_process_server, timeout=10) as http:
        token = await register_over_http(http, "streamer@example.com")
        with statements_run(app) as statements:
            async with http.stream("GET", "/api/v1/notifications/stream", headers=bearer(token)) as response:
                assert response.status_code == 200
                await read_until_the_count(response)
    assert reading_users(statements) == []


async def test_a_page_reads_the_user_once_and_shows_what_is_current(client, app, session):
    from tests.integration.pages import register_in_browser

    await register_in_browser(client, "pages@example.com")
    me = (await client.get("/api/v1/me")).json()
    assert me["name"]
    with statements_run(app) as statements:
        page = await client.get("/notifications")
    assert page.status_code == 200 and me["name"] in page.text
    assert len(reading_users(statements)) == 1, statements
    # A change to the row (here by hand) shows on the next page: nothing about the user is cached.
    await session.execute(update(User).where(User.id == me["id"]).values(name="Renamed Person", role="admin"))
    await session.commit()
    page = await client.get("/admin/announcements")
    assert page.status_code == 200 and "Renamed Person" in page.text


async def test_a_valid_token_of_a_user_without_a_row_is_signed_out_where_the_row_matters(client):
    """A token signed with this deployment's key for a user that has no row (a database reset
    under a browser that kept its cookie): nothing that shows or checks the user serves it."""
    token = issue_access_token(987_654, TEST_SECRET, timedelta(minutes=5), session="gone")
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 401
    page = await client.get("/notifications", headers=bearer(token))
    assert page.status_code in (302, 303, 401)
    assert (await client.get("/admin/announcements", headers=bearer(token))).status_code in (302, 303, 401)


async def test_a_stream_opens_without_a_worker_thread(in_process_server, monkeypatch):
    """Litestar's ServerSentEvent pulls its leading lines through a worker thread on every stream
    (`sync_to_thread`): a thread hop per opening. The streams write their body themselves."""
    import litestar.response.sse
    import litestar.utils.sync

    hops: list[object] = []

    async def counted_hop(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        hops.append(fn)
        return fn(*args, **kwargs)

    monkeypatch.setattr(litestar.response.sse, "sync_to_thread", counted_hop)
    monkeypatch.setattr(litestar.utils.sync, "sync_to_thread", counted_hop)
    async with httpx.AsyncClient(base_url=in_process_server, timeout=10) as http:
        token = await register_over_http(http, "threads@example.com")
        async with http.stream("GET", "/api/v1/notifications/stream", headers=bearer(token)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache, no-transform"
            assert response.headers["x-accel-buffering"] == "no"
            lines = response.aiter_lines()
            assert await anext(lines) == ": connected"
            assert await anext(lines) == "retry: 2000"
            while "notification_count" not in await anext(lines):
                pass
    assert hops == []


async def test_a_stream_passes_by_the_middlewares_of_pages_and_writes(in_process_server, monkeypatch):
    """A stream is one long response that writes nothing: no flash to take, no CSRF cookie to set
    (it is a GET), no conflict to retry once its first byte is out. Those middlewares stay out of
    its opening and out of every message it sends (each one a wrapper around `send`)."""
    import webapp.web.sse
    from webapp.flash import TAKEN
    from webapp.retry import RetryConflictsMiddleware

    retried: list[object] = []
    attempt = RetryConflictsMiddleware._attempt

    async def counted(self, scope, *args, **kwargs):  # type: ignore[no-untyped-def]
        retried.append(scope["path"])
        return await attempt(self, scope, *args, **kwargs)

    monkeypatch.setattr(RetryConflictsMiddleware, "_attempt", counted)
    scopes: list[dict[str, Any]] = []
    open_stream = webapp.web.sse._open

    def seen(request, encode):  # type: ignore[no-untyped-def]
        scopes.append(request.scope)
        return open_stream(request, encode)

    monkeypatch.setattr(webapp.web.sse, "_open", seen)
    async with httpx.AsyncClient(base_url=in_process_server, timeout=10) as http:
        token = await register_over_http(http, "bypass@example.com")
        assert retried == ["/api/v1/auth/register"]  # a write runs inside the retry
        async with http.stream("GET", "/api/v1/notifications/stream", headers=bearer(token)) as response:
            assert response.status_code == 200
            await read_until_the_count(response)
        assert "set-cookie" not in response.headers
    assert retried == ["/api/v1/auth/register"]
    assert TAKEN not in scopes[0].get("state", {})  # the flash middleware did not run


def in_transaction(driver_connection: Any) -> bool:
    """asyncpg's and aiosqlite's words for it."""
    if hasattr(driver_connection, "is_in_transaction"):
        return bool(driver_connection.is_in_transaction())
    return bool(driver_connection.in_transaction)


async def test_a_read_session_holds_no_transaction_open(database_url):
    """Reads (GET requests, the streams' openings) run each statement as its own snapshot, which
    is all READ COMMITTED gives a statement anyway: no BEGIN and no ROLLBACK around them, two
    round trips saved per read session on PostgreSQL (a quarter of a reconnect storm's reads)."""
    engine = create_engine(database_url)
    readers = create_reader_engine(engine, database_url, DatabaseTimeouts())
    try:
        async with create_sessionmaker(readers)() as session:
            assert (await session.execute(select(1))).scalar_one() == 1
            raw = await (await session.connection()).get_raw_connection()
            assert not in_transaction(raw.driver_connection)
        async with create_sessionmaker(engine)() as session:  # writers still work in one transaction
            await session.execute(select(1))
            raw = await (await session.connection()).get_raw_connection()
            assert in_transaction(raw.driver_connection)
    finally:
        await readers.dispose()
        await engine.dispose()
