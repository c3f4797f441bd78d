"""The operations page (/admin/ops) with the real app: for admins only, its figures follow what the
process does (streams opened, notifications created), its stream pushes them live and ends with
the session, and every process keeps its samples for two hours."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from tests.ops_page import breakdown, figure
from tests.reliability.conftest import Account, announce, bearer, register, register_admin
from tests.reliability.sse import Closed, Event, EventStream, open_stream
from tidings.app import create_app
from webapp.db import utcnow
from webapp.ops.models import OpsSample
from webapp.ops.sampling import process_figures
from webapp.settings import Settings

SAMPLE_SECONDS = 0.2
WAIT = 10.0
OPS_STREAM = "/admin/ops/stream"


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(dataclasses.replace(settings, ops_sample_seconds=SAMPLE_SECONDS, announcements_per_hour=1000))


@pytest.fixture
async def http(in_process_server: str):
    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as client:
        yield client


def transport(html: str, name: str) -> int:
    return breakdown(html, "transport", name)


async def eventually(read: Callable[[], Awaitable[str]], check: Callable[[str], bool], within: float = WAIT) -> str:
    deadline = time.monotonic() + within
    while True:
        html = await read()
        if check(html):
            return html
        assert time.monotonic() < deadline, f"not within {within} s; last:\n{html[:3000]}"
        await asyncio.sleep(0.1)


async def page(http: httpx.AsyncClient, account: Account) -> str:
    response = await http.get("/admin/ops", headers=bearer(account))
    assert response.status_code == 200, response.text
    return response.text


async def test_the_operations_page_is_for_admins_only(http, session) -> None:
    anonymous = await http.get("/admin/ops")
    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"] == "/login?next=%2Fadmin%2Fops"

    member = await register(http)
    refused = await http.get("/admin/ops", headers=bearer(member))
    assert refused.status_code == 404
    assert 'href="/admin/ops"' not in (await http.get("/", headers=bearer(member))).text

    admin = await register_admin(http, session)
    html = await page(http, admin)
    assert "<h1>Operations</h1>" in html
    assert 'href="/admin/ops"' in (await http.get("/", headers=bearer(admin))).text  # the nav link
    # where an admin announces to everyone, and follows the announcements' reports live
    assert 'action="/admin/announcements"' in html and 'name="title"' in html
    assert 'hx-sse:connect="/admin/announcements/stream"' in html
    assert 'hx-sse:connect="/admin/ops/stream"' in html


async def test_the_operations_stream_is_for_admins_only(http, session) -> None:
    async with open_stream(http, None, path=OPS_STREAM) as anonymous:
        assert anonymous.status == 401
    member = await register(http)
    async with open_stream(http, member.token, path=OPS_STREAM) as refused:
        assert refused.status == 404


async def test_the_page_counts_open_streams_and_notifications_per_minute_as_they_happen(http, session) -> None:
    admin = await register_admin(http, session)
    reader = await register(http)
    before = await page(http, admin)
    json_streams = transport(before, "sse_json")

    async with open_stream(http, admin.token, path=OPS_STREAM) as live:
        assert live.status == 200
        first = await _fragment(live)
        assert transport(first, "sse_json") == json_streams

        async with open_stream(http, reader.token) as one, open_stream(http, reader.token) as two:
            assert (one.status, two.status) == (200, 200)
            # the page, and the live stream without a reload, show both streams
            await eventually(lambda: page(http, admin), lambda html: transport(html, "sse_json") == json_streams + 2)
            await _fragment_until(live, lambda html: transport(html, "sse_json") == json_streams + 2)

            per_minute = float(figure(await page(http, admin), "notifications"))
            await announce(http, admin, "Maintenance tonight")  # one notification to each of the two users
            await one.notifications(1, WAIT)
            await _fragment_until(live, lambda html: float(figure(html, "notifications")) >= per_minute + 2)
    after = await eventually(lambda: page(http, admin), lambda html: transport(html, "sse_json") == json_streams)
    # This web process (with its embedded workers) reports; the session's browser-test server,
    # which shares the test database, may report beside it.
    assert int(figure(after, "processes")) >= 1 and "web" in after


async def test_the_operations_stream_ends_when_its_session_does(http, session) -> None:
    admin = await register_admin(http, session)
    async with open_stream(http, admin.token, path=OPS_STREAM) as live:
        await _fragment(live)
        response = await http.post("/api/v1/auth/logout", headers=bearer(admin))
        assert response.status_code == 204
        deadline = time.monotonic() + WAIT
        events = []
        while not isinstance(item := await live.next_event(deadline - time.monotonic()), Closed):
            events.append(item.event)
        assert events[-1] == "close"  # tells the page not to reconnect


async def test_the_operations_stream_ends_when_the_process_stops(http, session, app) -> None:
    from webapp.realtime.doorbell import CLOSE

    admin = await register_admin(http, session)
    async with open_stream(http, admin.token, path=OPS_STREAM) as live:
        await _fragment(live)
        app.state.doorbell.hub.broadcast(CLOSE)  # what the server does when told to stop
        deadline = time.monotonic() + WAIT
        events = []
        while not isinstance(item := await live.next_event(deadline - time.monotonic()), Closed):
            events.append(item.event)
        assert "close" not in events  # the page reconnects: to another process, or to this one once back


async def test_each_process_writes_samples_and_deletes_those_older_than_two_hours(app, session) -> None:
    now = utcnow()
    for hours in (3, 1):
        session.add(
            OpsSample(
                process=f"web:gone-{hours}h:1",
                kind="web",
                started_at=now - timedelta(hours=5),
                taken_at=now - timedelta(hours=hours),
                figures=process_figures(),
            )
        )
    await session.commit()
    async with AsyncTestClient(app):
        this = OpsSample.process == app.state.ops_sampler.process
        deadline = time.monotonic() + WAIT
        while await _count(session, this) < 2:
            assert time.monotonic() < deadline, "no samples written"
            await asyncio.sleep(SAMPLE_SECONDS)
    kept = set(await session.scalars(select(OpsSample.process).where(OpsSample.process.like("web:gone%"))))
    assert kept == {"web:gone-1h:1"}
    written = (await session.scalars(select(OpsSample).order_by(OpsSample.id.desc()).limit(1))).one()
    assert {"open.sse_html", "created", "live", "le.5", "outbox_lag", "queue_depth", "dead_letters"} <= set(
        written.figures
    )


async def _count(session, condition) -> int:  # type: ignore[no-untyped-def]
    count = int(await session.scalar(select(func.count()).select_from(OpsSample).where(condition)))
    await session.rollback()  # no transaction (on SQLite: no write lock) held while the app writes
    return count


async def _fragment(stream: EventStream) -> str:
    item = await stream.next_event(WAIT)
    assert isinstance(item, Event) and item.event == "message", item  # unnamed: htmx swaps it
    assert 'id="ops-figures"' in item.data
    return item.data


async def _fragment_until(stream: EventStream, check: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + WAIT
    while True:
        html = await _fragment(stream)
        if check(html):
            return html
        assert time.monotonic() < deadline, f"the stream never showed it; last:\n{html[:3000]}"


async def test_the_page_reads_only_new_samples_yet_misses_none_committed_late(session) -> None:
    from webapp.ops.figures import Sample
    from webapp.ops.store import RecentSamples, add_sample

    now = utcnow()
    since = now - timedelta(minutes=61)

    async def write(process: str, seconds_ago: float) -> None:
        taken = now - timedelta(seconds=seconds_ago)
        add_sample(session, Sample(process, "web", now - timedelta(hours=1), taken, {"created": seconds_ago}))
        await session.commit()

    await write("web:a:1", 3700)  # older than the hour read
    for seconds_ago in (600, 20, 10):
        await write("web:a:1", seconds_ago)
    recent = RecentSamples()
    first = await recent.read(session, since)
    assert [s.figures["created"] for s in first] == [600, 20, 10]

    await write("web:a:1", 0)
    await write("web:b:2", 15)  # taken before the newest already read, committed after it
    again = await recent.read(session, since)
    assert [(s.process, s.figures["created"]) for s in again] == [
        ("web:a:1", 600),
        ("web:a:1", 20),
        ("web:b:2", 15),
        ("web:a:1", 10),
        ("web:a:1", 0),
    ]
    # as the window moves on, the early ones leave it
    later = await recent.read(session, now - timedelta(minutes=5))
    assert [s.figures["created"] for s in later] == [20, 15, 10, 0]
