"""A notification whose doorbell ring was lost still reaches the open streams within
STREAM_RESYNC_SECONDS.

The notifications are committed from this process, which rings no server's doorbell: exactly what
a worker killed between commit and publish, or a publish while Redis was down, leaves behind.
Nothing else happens on the streams meanwhile (no reconnect, no other ring), so only the server's
periodic check can bring them.
"""

from __future__ import annotations

import time

import httpx

from tests.reliability.cable import CableClient
from tests.reliability.conftest import RESYNC_SECONDS, add_notifications, register
from tests.reliability.sse import PAGE_STREAM, Event, open_stream

# The check runs every RESYNC_SECONDS; a notification committed just after one waits for the next.
WITHIN = RESYNC_SECONDS * 2 + 2


async def test_a_notification_committed_without_a_ring_reaches_open_sse_streams_within_the_resync_interval(
    resync_server, session
):
    async with httpx.AsyncClient(base_url=resync_server.url, timeout=30) as http:
        member = await register(http)
        async with (
            open_stream(http, member.token, last_event_id=0) as api,
            open_stream(http, member.token, last_event_id=0, path=PAGE_STREAM) as page,
        ):
            assert api.status == 200 and page.status == 200
            await api.until_heartbeat(5)  # opened and idle
            committed = time.monotonic()
            await add_notifications(session, member.id, 2, prefix="unrung")
            got = await api.notifications(2, within=WITHIN)
            latency = time.monotonic() - committed
            assert [int(e.id or 0) for e in got] == [1, 2]
            assert [e.json()["title"] for e in got] == ["unrung 0", "unrung 1"]
            on_page: list[Event] = []
            while len(on_page) < 2:  # HTML fragments, as `notification` events
                item = await page.next_event(max(committed + WITHIN - time.monotonic(), 0.01))
                assert isinstance(item, Event), item
                if item.event == "notification":
                    on_page.append(item)
            assert [int(e.id or 0) for e in on_page] == [1, 2]
            assert "unrung 1" in on_page[1].data
            print(
                f"\n[resync] SSE: 2 unrung notifications arrived {latency:.2f} s after commit "
                f"(STREAM_RESYNC_SECONDS={RESYNC_SECONDS})"
            )


async def test_a_notification_committed_without_a_ring_reaches_an_open_cable_subscription(resync_server, session):
    async with httpx.AsyncClient(base_url=resync_server.url, timeout=30) as http:
        member = await register(http)
    cable = await CableClient.open(resync_server.url, member.token)
    try:
        await cable.expect("welcome")
        await cable.subscribe()
        opening = await cable.message(10)
        assert opening is not None and opening["type"] == "notification_count", opening
        committed = time.monotonic()
        await add_notifications(session, member.id, 1, prefix="unrung")
        deadline = committed + WITHIN
        while True:
            message = await cable.message(max(deadline - time.monotonic(), 0.01))
            assert message is not None, "the socket closed"
            if message["type"] == "new_notification":
                break
        latency = time.monotonic() - committed
        assert message["notification"]["title"] == "unrung 0" and message["notification"]["seq"] == 1
        print(f"\n[resync] /cable: the unrung notification arrived {latency:.2f} s after commit")
    finally:
        await cable.close()
