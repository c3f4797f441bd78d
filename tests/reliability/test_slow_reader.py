"""A client that stops reading is dropped once its stream's queue overflows, then resumes by seq.

The client is a bare socket that reads nothing while announcements with large bodies keep
coming. Before connecting it sets a 4 KiB receive buffer and a 1400-byte maximum segment size:
on loopback (64 KiB MTU) Linux would otherwise size the server's send buffer at ~4 MB from the
first segment, far more than over any real network, and the test would need thousands of items.
The server may hold only so much for the client (uvicorn's 64 KiB transport buffer, the
kernel's send buffer, STREAM_QUEUE_SIZE doorbell messages): once the stream's queue overflows it
must end the stream, so when the client reads again it gets what was already on its way and
then the end, well before all the items. Resuming from the last id it saw delivers the rest
exactly once.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from tests.reliability.conftest import QUEUE_SIZE, REPLAY_LIMIT, announce, register, register_admin, wait_for_seq
from tests.reliability.sse import API_STREAM, Event, RawStream, open_stream, stream_headers

ITEMS = 200
TITLE = 190  # with the item number, near the 200-character limit
BODY = 2000  # the longest body an announcement takes (AnnouncementService.MAX_BODY)
PRODUCERS = 3


async def test_slow_reader_is_disconnected_not_buffered_without_bound_and_resumes_exactly_once(http, session, server):
    assert ITEMS <= REPLAY_LIMIT  # so the resume below can be a replay, not a reset
    admin = await register_admin(http, session)
    member = await register(http)
    parts = urlsplit(server.url)
    raw = RawStream(parts.hostname or "127.0.0.1", parts.port or 80, rcvbuf=4096, mss=1400)
    try:
        opening = await raw.open(API_STREAM, stream_headers(member.token, 0))
        assert raw.status == 200, raw.headers
        deadline = time.monotonic() + 10
        while not any(isinstance(i, Event) and i.event == "notification_count" for i in opening):
            opening += await raw.read(deadline - time.monotonic())

        # From here the client reads nothing while the items are announced.
        started = time.monotonic()
        numbers = iter(range(1, ITEMS + 1))

        async def produce() -> None:
            for n in numbers:
                await announce(http, admin, f"big {n} " + "t" * TITLE, f"{n:06d}" + "b" * (BODY - 6))

        await asyncio.gather(*(produce() for _ in range(PRODUCERS)))
        await wait_for_seq(http, member, ITEMS)  # all written (announcements may fan out in the background)
        produced = time.monotonic() - started

        try:
            items = await raw.read_until_eof(within=20)
        except TimeoutError:
            raise AssertionError(
                f"the server kept the stream of a client that read nothing while {ITEMS} items came "
                f"(it then read {raw.bytes_read} bytes and the stream was still open)"
            ) from None
        got = [i for i in items if isinstance(i, Event) and i.event == "new_notification"]
        bytes_read = raw.bytes_read
    finally:
        raw.close()
    received = [int(e.id or 0) for e in got]
    titles = [e.json()["title"].split()[1] for e in got]
    total_bytes = ITEMS * (BODY + TITLE)
    print(
        f"\n[slow reader] {ITEMS} items (~{(BODY + TITLE) // 1000} KB each, {total_bytes // 1000} KB) announced in "
        f"{produced:.1f} s; the stalled client (queue {QUEUE_SIZE}) then read {len(received)} items, "
        f"{bytes_read // 1000} KB, before the server ended its stream"
    )
    assert received == list(range(1, len(received) + 1)), received  # what came is in order, without gaps
    assert len(received) <= ITEMS // 2, f"{len(received)} of {ITEMS} items were held for a stalled client"

    last = received[-1] if received else 0
    async with open_stream(http, member.token, last_event_id=last) as stream:
        assert stream.status == 200, stream.body
        rest = await stream.notifications(ITEMS - last, within=30)
        assert [int(e.id or 0) for e in rest] == list(range(last + 1, ITEMS + 1))
        titles += [e.json()["title"].split()[1] for e in rest]
        after = await stream.until_heartbeat(10)
        assert "new_notification" not in [e.event for e in after], after
    assert sorted(titles, key=int) == [str(n) for n in range(1, ITEMS + 1)]  # every item exactly once
    print(f"[slow reader] resumed with Last-Event-ID {last}: the other {ITEMS - last} came once each, in order")
