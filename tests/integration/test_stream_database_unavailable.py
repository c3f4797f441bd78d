"""A stream whose database read cannot get a connection in time (issue 12's reconnect storm: a
connect that timed out under a full event loop; a pool held by other work; a database restarting).

A read that got no connection ran nothing, so it is tried again a few times while the stream
stays open, and the stream opens as soon as a connection comes. A database that stays
unavailable ends the stream cleanly, with one warning and no traceback: an SSE client reconnects
by itself and resumes from its Last-Event-ID, and a cable resumes the stream in-process from the
last seq it sent (ActionCable clients resubscribe without one). Before, the read's error escaped
the stream after its head was sent: the answer was cut with a traceback in the log, and a cable's
channel went silent on an open socket.

Most tests hold the only connection of a one-connection pool that gives up after 0.2 s; the last
one opens a stream while PostgreSQL cannot be reached at all, then brings it back.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from tests.asgi import Client, holds_within
from tests.integration.test_pool_checkout import BASE_URL
from tests.integration.test_stream_resync import make_users, no_doorbell
from tests.services import throwaway_postgres_database
from tidings.cli import upgrade_database
from webapp import metrics
from webapp.auth.models import User
from webapp.db import create_engine, create_sessionmaker, utcnow
from webapp.notifications.services import NewNotification, NotificationService
from webapp.notifications.stream import InboxStream, StreamConfig, StreamEvent
from webapp.realtime.doorbell import Hub
from webapp.realtime.protocol import NewMessage, to_wire
from webapp.settings import DatabaseTimeouts
from webapp.web.cable import CableConnection
from webapp.web.sse import api_encoder, inbox_answer

__all__ = ["no_doorbell"]  # fixture shared with the resync tests

GIVE_UP_SECONDS = 0.2
RETRIES = (0.3, 0.6, 1.2)  # the waits between tries; four tries in all, 1 to 3 s of waiting
CONFIG = StreamConfig(heartbeat_seconds=60, read_retry_seconds=RETRIES)


@asynccontextmanager
async def one_connection_engine(database_url: str, give_up_seconds: float) -> AsyncIterator[Any]:
    """A readers' engine whose pool has one connection and waits for it `give_up_seconds`."""
    timeouts = DatabaseTimeouts(connect_seconds=give_up_seconds)
    # PostgreSQL's engine takes its pool timeout from `timeouts`; SQLite's is given here.
    pool = {"pool_timeout": give_up_seconds} if database_url.startswith("sqlite") else {}
    engine = create_engine(database_url, readers_only=True, timeouts=timeouts, pool_size=1, max_overflow=0, **pool)
    async with engine.connect():  # opened once, so later waits are for the pool, not a connect
        pass
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[Any]:
    async with one_connection_engine(database_url, GIVE_UP_SECONDS) as engine:
        yield engine


@asynccontextmanager
async def held(engine: Any) -> AsyncIterator[Any]:
    """The pool's only connection, taken by other work until the block ends or it is closed."""
    connection = await engine.connect()
    try:
        yield connection
    finally:
        await connection.close()


class CountedSessions:
    """The engine's sessionmaker, counting the sessions made: one per try of a read."""

    def __init__(self, engine: Any) -> None:
        self.sessionmaker = create_sessionmaker(engine)
        self.made = 0
        self.times: list[float] = []  # when each was made (time.monotonic)

    def __call__(self) -> Any:
        self.made += 1
        self.times.append(time.monotonic())
        return self.sessionmaker()


def stream_of(sessions: Any, user_id: int, last_seq: int | None, hub: Hub | None = None) -> InboxStream:
    return InboxStream(
        user_id=user_id,
        last_seq=last_seq,
        subscription=(hub or Hub()).subscribe(user_id, 64),
        sessionmaker=sessions,
        config=CONFIG,
    )


async def notify(session: Any, user_id: int, count: int) -> None:
    for n in range(count):
        await NotificationService(session).notify(NewNotification(user_id=user_id, type="general", title=f"n{n}"))
    await session.commit()


async def within(seconds: float, events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    """Every event until the stream ends, which it must within `seconds`."""

    async def collect() -> list[StreamEvent]:
        return [event async for event in events]

    return await asyncio.wait_for(collect(), seconds)


async def test_an_opening_waits_out_a_pool_that_is_taken_for_a_moment(one_connection, session, no_doorbell):
    (user,) = await make_users(session, 1)
    await notify(session, user, 3)
    sessions = CountedSessions(one_connection)
    body = stream_of(sessions, user, last_seq=1).events()

    async with held(one_connection) as other_work:
        opening = asyncio.ensure_future(anext(body))
        await holds_within(lambda: sessions.made >= 2, 10)  # the first try gave up
        await other_work.close()
        first = await asyncio.wait_for(opening, 10)
    events = [first] + [await asyncio.wait_for(anext(body), 10) for _ in range(2)]
    await body.aclose()  # type: ignore[attr-defined]

    assert [(e.kind, e.seq) for e in events] == [("notification", 2), ("notification", 3), ("count", 3)]
    assert events[-1].payload["unread_count"] == 3


async def test_a_stream_ends_cleanly_when_the_database_stays_unavailable(one_connection, session, no_doorbell, caplog):
    (user,) = await make_users(session, 1)
    sessions = CountedSessions(one_connection)
    stream = stream_of(sessions, user, last_seq=None)

    with caplog.at_level(logging.INFO):
        async with held(one_connection):
            events = await within(10, stream.events())

    assert events == []
    assert sessions.made == len(RETRIES) + 1
    assert stream.end_reason == "database_unavailable"
    assert [r.levelname for r in caplog.records if "database unavailable" in r.getMessage()] == ["WARNING"]
    assert not [r for r in caplog.records if r.exc_info]  # one line, no traceback


async def test_a_client_that_leaves_while_its_stream_waits_to_try_again_is_let_go_at_once(
    one_connection, session, no_doorbell
):
    (user,) = await make_users(session, 1)
    hub = Hub()
    sessions = CountedSessions(one_connection)
    # One wait before the second try, 2.5 to 7.5 s: the client leaves during it.
    config = StreamConfig(heartbeat_seconds=60, read_retry_seconds=(5.0,))
    body = InboxStream(
        user_id=user, last_seq=None, subscription=hub.subscribe(user, 64), sessionmaker=sessions, config=config
    ).events()

    async with held(one_connection):
        opening = asyncio.ensure_future(anext(body))
        await holds_within(lambda: sessions.made >= 1, 10)
        await asyncio.sleep(GIVE_UP_SECONDS + 1)  # the first try has given up; the stream waits
        opening.cancel()  # the server cancels the answer of a client that left
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(opening, 1)

    assert hub.count(user) == 0  # its place among the user's streams is free
    assert sessions.made == 1  # no second try for a client that left


async def test_a_read_that_fails_after_its_client_left_leaves_no_error_behind(
    database_url, session, no_doorbell, caplog
):
    """The read goes on after its client left (a cancelled query could hand its connection back
    mid-transaction); its failure then is no one's news. Before, asyncio logged it with a
    traceback as a task exception never retrieved."""
    (user,) = await make_users(session, 1)

    # The pool gives up after 2 s: the client leaves while the first try still waits for it.
    with caplog.at_level(logging.INFO):
        async with one_connection_engine(database_url, 2.0) as engine, held(engine):
            sessions = CountedSessions(engine)
            body = stream_of(sessions, user, last_seq=None).events()
            opening = asyncio.ensure_future(anext(body))
            await holds_within(lambda: sessions.made >= 1, 10)  # its first try waits for the pool
            opening.cancel()  # the client left
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(opening, 1)
            # The read, left to finish, gives up on the pool meanwhile.
            await holds_within(lambda: any(r.name == "tidings.db" for r in caplog.records), 10)
        gc.collect()  # asyncio reports an exception never retrieved when its task is collected

    assert sessions.made == 1  # not tried again for a client that left
    told = [r.getMessage() for r in caplog.records if r.name == "tidings.db"]
    assert told == ["a read failed after its caller left: DatabaseUnavailable"]
    assert not [r for r in caplog.records if r.exc_info or "never retrieved" in r.getMessage()]


async def test_an_error_that_is_not_an_unavailable_database_is_not_taken_for_one(tmp_path):
    # A database without its tables (a deploy that skipped its migration): an error, not an outage.
    empty = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", readers_only=True)
    sessions = CountedSessions(empty)
    stream = stream_of(sessions, 1, last_seq=None)
    try:
        with pytest.raises(OperationalError, match="no such table"):
            await within(10, stream.events())
    finally:
        await empty.dispose()

    assert sessions.made == 1  # tried once: a bug is not waited out
    assert stream.end_reason != "database_unavailable"


async def test_a_live_stream_whose_gap_cannot_be_read_ends_where_its_client_can_resume(
    one_connection, session, no_doorbell
):
    (user,) = await make_users(session, 1)
    await notify(session, user, 1)
    hub = Hub()
    sessions = CountedSessions(one_connection)
    stream = stream_of(sessions, user, last_seq=None, hub=hub)
    body = stream.events()
    assert (await asyncio.wait_for(anext(body), 10)).kind == "count"  # open, at seq 1

    await notify(session, user, 2)  # seqs 2 and 3; only 3 rings: 2 must be read from the database
    async with held(one_connection):
        hub.deliver(to_wire(NewMessage(user=user, seq=3, notification={"id": 0}, unread_count=3, version=3)))
        rest = await within(10, body)

    assert rest == []  # nothing half-sent: no 3 before 2, no count for what it did not send
    assert stream.end_reason == "database_unavailable"
    assert stream.sent_seq == 1  # the client resumes from 1 and gets 2 and 3
    replay = stream_of(sessions, user, last_seq=stream.sent_seq).events()
    assert [(await asyncio.wait_for(anext(replay), 10)).seq for _ in range(2)] == [2, 3]
    await replay.aclose()  # type: ignore[attr-defined]


async def test_the_event_stream_answer_ends_and_counts_why(one_connection, session, no_doorbell):
    (user,) = await make_users(session, 1)
    stream = stream_of(CountedSessions(one_connection), user, last_seq=None)
    closed = metrics.CONNECTIONS_CLOSED.labels("sse_json", "database_unavailable")
    before = closed._value.get()
    client = Client()

    async with held(one_connection):
        answer = inbox_answer(stream, api_encoder)({"type": "http"}, client.receive, client.send)  # type: ignore[arg-type]
        await asyncio.wait_for(answer, 10)  # ends by itself, raising nothing

    bodies = client.bodies()
    assert bodies[0][0].startswith(b": connected")  # the client is connected, and reconnects
    assert bodies[-1] == (b"", False)  # a complete answer, not a cut one
    assert closed._value.get() == before + 1


class RecordingSocket:
    """What the cable's connection sends and closes, in place of a WebSocket."""

    def __init__(self, state: Any, user: User) -> None:
        self.app = SimpleNamespace(state=state)
        self.scope = {"user": user}
        self.frames: list[dict[str, Any]] = []
        self.closed = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.frames.append(json.loads(text))

    async def close(self, code: int = 1000) -> None:
        self.closed.set()


def recording_cable(sessions: CountedSessions, user: User, hub: Hub, config: StreamConfig) -> tuple[Any, Any]:
    """A cable connection on a recording socket, reading through `sessions`."""
    state = SimpleNamespace(
        reader_sessionmaker=sessions,
        stream_config=config,
        doorbell=SimpleNamespace(hub=hub),
        delivered_live=None,
        stream_reads=None,
    )
    socket = RecordingSocket(state, user)
    return CableConnection(socket), socket  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("last_seq", "sent"),
    [(1, ["notification 2", "count 2"]), (None, ["count 2"])],
    ids=["resuming-at-1", "first-subscribe"],
)
async def test_a_cable_subscription_resumes_in_process_once_the_database_is_back(
    one_connection, session, no_doorbell, last_seq, sent
):
    (user_id,) = await make_users(session, 1)
    await notify(session, user_id, 2)
    user = await session.get(User, user_id)
    hub = Hub()
    sessions = CountedSessions(one_connection)
    cable, socket = recording_cable(sessions, user, hub, CONFIG)
    forwarding = asyncio.ensure_future(cable._forward("{}", hub.subscribe(user_id, 64), last_seq))

    try:
        async with held(one_connection):
            # more tries than one stream makes: the first stream ended, and the next one tries
            await holds_within(lambda: sessions.made > len(RETRIES) + 1, 10)
            assert socket.frames == []  # no disconnect: the socket stays, its channel waits
        await holds_within(lambda: any(frame["message"]["type"] == "notification_count" for frame in socket.frames), 10)
        await asyncio.sleep(0.2)  # anything sent after the count would show now
    finally:
        forwarding.cancel()

    def described(message: dict[str, Any]) -> str:
        if message["type"] == "new_notification":
            return f"notification {message['notification']['seq']}"
        return f"count {message['unread_count']}"

    # From where the client was, as if nothing had happened: nothing lost, nothing twice (a
    # first subscribe starts from now, with no history replayed as new).
    assert [described(frame["message"]) for frame in socket.frames] == sent
    assert not socket.closed.is_set()


async def test_a_cable_whose_database_stays_unavailable_pauses_longer_between_its_streams(
    one_connection, session, no_doorbell
):
    """Each stream's reads try again by themselves; the cable then waits before the next stream,
    longer each time, so that thousands of sockets do not ask a database coming back all at once."""
    (user_id,) = await make_users(session, 1)
    user = await session.get(User, user_id)
    hub = Hub(unstarted_grace=0.5)  # shorter than every pause but the first's shortest
    sessions = CountedSessions(one_connection)
    config = StreamConfig(heartbeat_seconds=60, read_retry_seconds=(), resume_pause_seconds=(1.0, 2.0))
    cable, socket = recording_cable(sessions, user, hub, config)

    async with held(one_connection):
        forwarding = asyncio.ensure_future(cable._forward("{}", hub.subscribe(user_id, 64), None))
        try:
            await holds_within(lambda: sessions.made >= 4, 20)  # four streams, one try each
            # One slot, not one per stream, and kept through the pauses: not taken for the slot of
            # a client that left before its stream began.
            assert hub.count(user_id) == 1
        finally:
            forwarding.cancel()

    gaps = [later - earlier for earlier, later in zip(sessions.times, sessions.times[1:], strict=False)][:3]
    # At least the pause's lower bound (-50 %): 0.5 s, then 1 s, then 1 s (the last repeated).
    assert [gap >= least for gap, least in zip(gaps, [0.5, 1.0, 1.0], strict=True)] == [True] * 3, gaps
    assert socket.frames == []  # the socket stays open, its channel waits


# ---- PostgreSQL down, then back --------------------------------------------------------------


@pytest.fixture
def migrated_postgres() -> Iterator[str]:
    """A database of its own on the PostgreSQL server, in both CI legs (the relay below needs a
    server to relay to)."""
    with throwaway_postgres_database(BASE_URL) as url:
        upgrade_database(url)
        yield url


class Relay:
    """A port where the database is unreachable (bound, not listening: every connect is refused)
    until `open()`, from when it relays each connection to the real server."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        port = self.socket.getsockname()[1]
        user = parts.netloc.rpartition("@")[0]
        self.url = urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"))
        self.server: asyncio.Server | None = None

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._relay, sock=self.socket)

    async def _relay(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection(*self.target)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_in, server_out), pipe(server_in, client_out))

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.socket.close()


async def test_a_stream_opened_while_postgresql_is_unreachable_opens_once_it_is_back(migrated_postgres):
    writer = create_engine(migrated_postgres)
    async with writer.begin() as connection:
        user = (
            await connection.execute(
                insert(User)
                .values(email="back@example.com", name="B", password_hash="!", timezone="UTC", created_at=utcnow())
                .returning(User.id)
            )
        ).scalar_one()
    async with create_sessionmaker(writer)() as session:
        await NotificationService(session).notify(NewNotification(user_id=user, type="general", title="Doors open"))
        await session.commit()
    await writer.dispose()

    relay = Relay(migrated_postgres)
    readers = create_engine(relay.url, readers_only=True, timeouts=DatabaseTimeouts(connect_seconds=2))
    unavailable = metrics.DATABASE_ERRORS.labels("unavailable")
    refused_before = unavailable._value.get()
    stream = InboxStream(
        user_id=user,
        last_seq=0,
        subscription=Hub().subscribe(user, 64),
        sessionmaker=create_sessionmaker(readers),
        config=StreamConfig(heartbeat_seconds=60, read_retry_seconds=(0.2, 0.4, 0.8, 1.6)),
    )
    body = stream.events()
    try:
        opening = asyncio.ensure_future(anext(body))
        await holds_within(lambda: unavailable._value.get() > refused_before, 10)  # refused
        await relay.open()  # the database is back
        first = await asyncio.wait_for(opening, 10)
        second = await asyncio.wait_for(anext(body), 10)
    finally:
        await body.aclose()  # type: ignore[attr-defined]
        await readers.dispose()
        relay.close()

    assert (first.kind, first.seq, first.payload["title"]) == ("notification", 1, "Doors open")
    assert (second.kind, second.payload["unread_count"]) == ("count", 1)
