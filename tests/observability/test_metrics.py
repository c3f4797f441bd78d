"""GET /metrics against a real server: the numbers move as the streams, notifications and
requests they describe happen, and the labels stay bounded."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from contextlib import AsyncExitStack

import httpx
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.observability.conftest import Scrape, scrape
from tests.reliability.cable import CableClient
from tests.reliability.conftest import Account, add_notifications, announce, register, register_admin
from tests.reliability.sse import EventStream, open_stream
from tidings.app import create_app
from webapp.auth.models import User
from webapp.settings import Settings

WAIT = 10.0
OPEN = "tidings_connections_open"


async def eventually(http: httpx.AsyncClient, check, within: float = WAIT) -> Scrape:  # type: ignore[no-untyped-def]
    """Scrapes until `check(scrape)` holds; the last scrape's failure is the assertion."""
    deadline = time.monotonic() + within
    while True:
        reading = await scrape(http)
        try:
            check(reading)
            return reading
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


async def test_three_open_streams_read_three_and_a_resume_counts_a_reconnection(metrics_http, session) -> None:
    user = await register(metrics_http)
    before = await scrape(metrics_http)
    async with AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(open_stream(metrics_http, user.token)) for _ in range(3)]
        assert [s.status for s in streams] == [200, 200, 200]
        for stream in streams:
            await stream.next(WAIT)  # the stream has begun
        await eventually(metrics_http, lambda r: _equal(r.value("tidings_connections_open", transport="sse_json"), 3))
    # dropped: all three close as the client left
    after = await eventually(
        metrics_http, lambda r: _equal(r.value("tidings_connections_open", transport="sse_json"), 0)
    )
    closed = after.value("tidings_connections_closed_total", transport="sse_json", reason="client_left")
    assert closed - before.value("tidings_connections_closed_total", transport="sse_json", reason="client_left") == 3

    await add_notifications(session, user.id, 2)  # missed while away
    async with open_stream(metrics_http, user.token, last_event_id=0) as resumed:
        assert len(await resumed.notifications(2, WAIT)) == 2
        reading = await scrape(metrics_http)
    assert (
        reading.value("tidings_stream_reconnects_total", transport="sse_json")
        - before.value("tidings_stream_reconnects_total", transport="sse_json")
        == 1
    )
    assert (
        reading.value("tidings_stream_replays_total", transport="sse_json")
        - before.value("tidings_stream_replays_total", transport="sse_json")
        == 1
    )
    assert (
        reading.value("tidings_stream_replayed_items_total", transport="sse_json")
        - before.value("tidings_stream_replayed_items_total", transport="sse_json")
        == 2
    )


async def test_three_open_cable_connections_read_three_and_closing_one_reads_two(metrics_http, metrics_server) -> None:
    user = await register(metrics_http)
    before = await scrape(metrics_http)
    assert before.value(OPEN, transport="cable") == 0  # this module's server: no other socket is open
    cables = [await CableClient.open(metrics_server.url, user.token) for _ in range(3)]
    try:
        for cable in cables:
            await cable.expect("welcome")
        await eventually(metrics_http, lambda r: _equal(r.value(OPEN, transport="cable"), 3))
        await cables.pop().close()
        after = await eventually(metrics_http, lambda r: _equal(r.value(OPEN, transport="cable"), 2))
        assert after.since(before, "tidings_connections_opened_total", transport="cable") == 3
        assert after.since(before, "tidings_connections_closed_total", transport="cable", reason="client_left") == 1
    finally:
        for cable in cables:
            await cable.close()
    await eventually(metrics_http, lambda r: _equal(r.value(OPEN, transport="cable"), 0))


def _equal(actual: float, expected: float) -> None:
    assert actual == expected, f"{actual} != {expected}"


async def test_a_fan_out_to_users_with_live_streams_counts_each_created_and_delivered_once(
    metrics_http, session: AsyncSession
) -> None:
    admin = await register_admin(metrics_http, session)
    users: list[Account] = [admin] + [await register(metrics_http) for _ in range(24)]
    assert await session.scalar(select(func.count(User.id))) == len(users)
    await session.commit()  # SQLite: the test's session must not keep the write lock
    before = await scrape(metrics_http)
    async with AsyncExitStack() as stack:
        streams: list[EventStream] = []
        for user in users:
            streams.append(await stack.enter_async_context(open_stream(metrics_http, user.token)))
        # a second tab of one user: still one delivery for each of its notifications
        streams.append(await stack.enter_async_context(open_stream(metrics_http, users[1].token)))
        for stream in streams:
            await stream.next(WAIT)
        await eventually(
            metrics_http,
            lambda r: _equal(r.value(OPEN, transport="sse_json"), len(users) + 1),
        )
        await announce(metrics_http, admin, "to everyone")
        for stream in streams:
            assert len(await stream.notifications(1, WAIT * 3)) == 1
        after = await eventually(
            metrics_http,
            lambda r: _equal(
                r.value("tidings_notifications_delivered_total")
                - before.value("tidings_notifications_delivered_total"),
                len(users),
            ),
        )
    created = after.value("tidings_notifications_created_total", type="general")
    assert created - before.value("tidings_notifications_created_total", type="general") == len(users)
    live = after.value("tidings_notifications_live_recipients_total")
    assert live - before.value("tidings_notifications_live_recipients_total") == len(users)
    observed = after.value("tidings_notification_delivery_seconds_count")
    assert observed - before.value("tidings_notification_delivery_seconds_count") == len(users)
    written = after.value("tidings_stream_messages_total", transport="sse_json", kind="notification")
    assert written - before.value("tidings_stream_messages_total", transport="sse_json", kind="notification") == (
        len(users) + 1
    )
    assert after.value("tidings_doorbell_received_total") > before.value("tidings_doorbell_received_total")


async def test_a_raw_path_that_matches_no_route_is_counted_under_a_bounded_label(metrics_http) -> None:
    raw = "/no-such-page-7f3a9c"
    before = await scrape(metrics_http)
    assert (await metrics_http.get(raw)).status_code == 404
    assert (await metrics_http.get("/api/v1/events/999999")).status_code == 404
    after = await scrape(metrics_http)
    assert (
        after.value("tidings_http_responses_total", route="unmatched", status="4xx")
        - before.value("tidings_http_responses_total", route="unmatched", status="4xx")
        == 1
    )
    route = "/api/v1/events/{event_id}"
    assert (
        after.value("tidings_http_responses_total", route=route, status="4xx")
        - before.value("tidings_http_responses_total", route=route, status="4xx")
        == 1
    )
    # No label carries the raw path or the id (the text as a whole may: a float like 0.7999999999).
    label_values = {value for _, labels in after.samples for _, value in labels}
    assert not [value for value in label_values if raw in value or "999999" in value]


async def test_metrics_are_refused_to_remote_clients_and_need_the_token_when_one_is_set(settings: Settings) -> None:
    # The test client's peer is not a loopback address: a remote client.
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        refused = await client.get("/metrics")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
    guarded = dataclasses.replace(settings, metrics_token="scrape-token-0123456789")
    async with AsyncTestClient(create_app(guarded), base_url="http://127.0.0.1:8000") as client:
        assert (await client.get("/metrics")).status_code == 403
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 403
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
        assert allowed.status_code == 200
        assert "tidings_connections_open" in allowed.text
