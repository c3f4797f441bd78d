"""One unit of work per request: committed at the boundary, retried on a lost race, never a 500;
nothing slow inside it; a database that hangs answers 503 within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

import webapp.auth.services as auth_services
from tests.api import bearer, book, create_event, register
from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET
from tests.services import LiveServer, free_port
from webapp.bookings.payment_gateway import ChargeResult, TestPaymentGateway
from webapp.db import Base
from webapp.groups.models import Group
from webapp.groups.services import GroupService
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService
from webapp.tables import import_all_models

GOOD_CARD = "4242 4242 4242 4242"


class Deadlock(Exception):
    """What asyncpg reports for a deadlock, as SQLAlchemy hands it on."""

    sqlstate = "40P01"


def deadlock() -> DBAPIError:
    return DBAPIError("UPDATE ...", None, Deadlock("deadlock detected"))


def sqlite_path(database_url: str) -> str | None:
    return database_url.split("///", 1)[1] if database_url.startswith("sqlite") else None


# ---- retries ---------------------------------------------------------------------------------


async def test_a_request_that_loses_a_deadlock_is_run_again_and_succeeds(client, session, monkeypatch):
    _, token = await register(client)
    create = GroupService.create
    calls = 0

    async def deadlocked_once(self, owner, name):
        nonlocal calls
        calls += 1
        group = await create(self, owner, name)
        if calls == 1:
            raise deadlock()  # after the insert: the retry must not find a half-made group
        return group

    monkeypatch.setattr(GroupService, "create", deadlocked_once)
    response = await client.post("/api/v1/groups", json={"name": "Second time lucky"}, headers=bearer(token))
    assert response.status_code == 201, response.text
    assert calls == 2
    assert await session.scalar(select(func.count()).select_from(Group)) == 1


async def test_a_request_that_keeps_deadlocking_gets_503_and_changes_nothing(client, session, monkeypatch):
    _, token = await register(client)
    create = GroupService.create

    async def always_deadlocked(self, owner, name):
        await create(self, owner, name)
        raise deadlock()

    monkeypatch.setattr(GroupService, "create", always_deadlocked)
    response = await client.post("/api/v1/groups", json={"name": "Never"}, headers=bearer(token))
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.json()["error"]["code"] == "service_unavailable"
    assert await session.scalar(select(func.count()).select_from(Group)) == 0


# ---- nothing slow inside a transaction -------------------------------------------------------


class BlockingGateway:
    """Holds every charge until the test lets it go."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def charge(self, **kwargs) -> ChargeResult:
        self.entered.set()
        await self.release.wait()
        return await TestPaymentGateway().charge(**kwargs)


async def test_other_users_are_not_held_up_while_a_payment_waits_for_the_gateway(app, in_process_server):
    gateway = BlockingGateway()
    app.state.payment_gateway = gateway
    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as http:
        _, organizer = await register(http)
        _, payer = await register(http)
        _, other = await register(http)
        event = await create_event(http, organizer, price_cents=1500)
        booking = (await book(http, payer, event["id"])).json()
        paying = asyncio.create_task(
            http.post(f"/api/v1/bookings/{booking['id']}/pay", json={"card_number": GOOD_CARD}, headers=bearer(payer))
        )
        await asyncio.wait_for(gateway.entered.wait(), timeout=10)
        try:
            # While the gateway works, another user writes (SQLite: needs the write lock) and reads.
            group = await http.post("/api/v1/groups", json={"name": "Meanwhile"}, headers=bearer(other), timeout=5)
            assert group.status_code == 201, group.text
            seats = await http.get(f"/api/v1/events/{event['id']}", timeout=5)
            assert seats.status_code == 200
            # The same booking cannot be paid twice at once.
            again = await http.post(
                f"/api/v1/bookings/{booking['id']}/pay", json={"card_number": GOOD_CARD}, headers=bearer(payer)
            )
            assert again.status_code == 409 and again.json()["error"]["code"] == "payment_in_progress"
        finally:
            gateway.release.set()
        paid = await paying
    assert paid.status_code == 200 and paid.json()["status"] == "confirmed", paid.text


async def test_other_users_are_not_held_up_while_a_password_is_verified(in_process_server, monkeypatch):
    verifying = threading.Event()
    release = threading.Event()
    hasher = auth_services._hasher

    class SlowHasher:
        def hash(self, password: str) -> str:
            return hasher.hash(password)

        def verify(self, stored: str, password: str) -> bool:
            verifying.set()
            release.wait(timeout=20)  # a slow hash, for as long as the test needs
            return hasher.verify(stored, password)

    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as http:
        user, _ = await register(http)
        _, other = await register(http)
        monkeypatch.setattr(auth_services, "_hasher", SlowHasher())
        login = asyncio.create_task(
            http.post("/api/v1/auth/login", json={"email": user["email"], "password": DEFAULT_PASSWORD})
        )
        await asyncio.to_thread(verifying.wait, 10)
        try:
            health = await http.get("/healthz", timeout=5)
            group = await http.post("/api/v1/groups", json={"name": "During a login"}, headers=bearer(other), timeout=5)
        finally:
            release.set()
        assert health.status_code == 200
        assert group.status_code == 201, group.text
        assert (await login).status_code == 200


async def test_reading_pages_and_the_api_takes_no_write_lock(client, database_url, engine):
    """Another transaction holds every table against writers (SQLite: its database-wide write lock;
    PostgreSQL: EXCLUSIVE table locks, which only plain reads get past): GET requests still answer."""
    _, token = await register(client)
    path = sqlite_path(database_url)
    async with contextlib.AsyncExitStack() as held:
        if path is not None:
            writer = sqlite3.connect(path, timeout=1, isolation_level=None)
            writer.execute("BEGIN IMMEDIATE")
            held.callback(writer.close)
            held.callback(writer.execute, "ROLLBACK")
        else:
            conn = await held.enter_async_context(engine.connect())
            await held.enter_async_context(conn.begin())  # rolled back on the way out
            import_all_models()
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"LOCK TABLE {tables} IN EXCLUSIVE MODE"))
        started = time.monotonic()
        for url in ("/api/v1/me", "/api/v1/notifications/unread_count", "/api/v1/events", "/api/v1/bookings", "/"):
            response = await client.get(url, headers=bearer(token))
            assert response.status_code == 200, (url, response.text)
        assert time.monotonic() - started < 5, "reads waited for the write lock"


# ---- the dropdown and "mark all as read" share one snapshot -----------------------------------


async def test_mark_all_read_marks_exactly_what_the_dropdown_showed(
    in_process_server, engine, database_url, monkeypatch
):
    # On PostgreSQL the late notification commits while the dropdown is being built. SQLite runs
    # one writer at a time, so there it commits as soon as the dropdown's transaction ends, before
    # "mark all as read": either way it must stay unread.
    one_writer = sqlite_path(database_url) is not None
    background: list[asyncio.Task[None]] = []
    from tests.integration.pages import csrf_token, post_form, register_in_browser
    from webapp.db import create_sessionmaker

    sessions = create_sessionmaker(engine)

    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as browser:
        await register_in_browser(browser, "snapshot@example.com")
        me = (await browser.get("/api/v1/me")).json()

        async def arrive(title: str) -> None:
            async with sessions() as other:
                await NotificationService(other).notify(NewNotification(user_id=me["id"], type="general", title=title))
                await other.commit()

        await arrive("shown")
        # A notification commits while the dropdown is being built, right after its first query
        # (the request's first read is the bell's state, before the handler: it is let through).
        listing = NotificationService.listing
        state = NotificationService.state
        calls = 0
        arrived = False

        async def late_arrival() -> None:
            nonlocal arrived, calls
            calls += 1
            if calls == 2:
                arrived = True
                if one_writer:
                    background.append(asyncio.create_task(arrive("arrived while the dropdown was built")))
                else:
                    await arrive("arrived while the dropdown was built")

        async def listing_then_arrival(self, *args, **kwargs):
            page = await listing(self, *args, **kwargs)
            await late_arrival()
            return page

        async def state_then_arrival(self, *args, **kwargs):
            result = await state(self, *args, **kwargs)
            await late_arrival()
            return result

        csrf = {"x-csrftoken": await csrf_token(browser, "/")}
        monkeypatch.setattr(NotificationService, "listing", listing_then_arrival)
        monkeypatch.setattr(NotificationService, "state", state_then_arrival)
        panel = await browser.post("/notifications/panel", headers={**csrf, "HX-Request": "true"})
        monkeypatch.undo()
        await asyncio.gather(*background)
        assert panel.status_code == 200 and arrived, panel.text
        assert "arrived while the dropdown was built" not in panel.text
        up_to_seq = panel.text.split('name="up_to_seq" value="', 1)[1].split('"', 1)[0]
        marked = await post_form(browser, "/notifications/read_all", {"up_to_seq": up_to_seq})
        assert marked.status_code in (200, 302, 303), marked.text
    async with sessions() as check:
        unread = list(await check.scalars(select(Notification.title).where(Notification.read_at.is_(None))))
        seen = list(await check.scalars(select(Notification.title).where(Notification.seen_at.is_not(None))))
    assert unread == ["arrived while the dropdown was built"]
    assert seen == ["shown"]


# ---- a database that hangs -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def hung_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word: a hung database."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    port = free_port()
    server = await asyncio.start_server(hold, "127.0.0.1", port)
    try:
        yield port
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_hung_database_answers_503_within_seconds_with_the_default_timeouts(tmp_path):
    async with hung_server() as port:
        server = LiveServer(
            env={
                "DATABASE_URL": f"postgresql+asyncpg://tidings@127.0.0.1:{port}/tidings",
                "SECRET_KEY": TEST_SECRET,
                "LOG_LEVEL": "WARNING",
            },
            log_path=tmp_path / "server.log",
        )
        await asyncio.to_thread(server.start)
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                timings = []
                for path in ("/api/v1/events", "/", "/api/v1/events/1"):
                    started = time.monotonic()
                    response = await http.get(path)
                    timings.append(time.monotonic() - started)
                    assert response.status_code == 503, (path, response.status_code, response.text[:300])
                    assert response.headers["retry-after"].isdigit()
                    assert "Traceback" not in response.text
                api = await http.get("/api/v1/events")
                assert api.json()["error"]["code"] == "service_unavailable"
                assert (await http.get("/healthz")).status_code == 200
        finally:
            await asyncio.to_thread(server.stop)
    print(f"hung database: answers in {', '.join(f'{t:.2f} s' for t in timings)}")
    assert max(timings) < 10
