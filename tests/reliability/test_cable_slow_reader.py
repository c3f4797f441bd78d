"""A /cable subscription whose buffer overflows is never left silently dead.

The client stops reading while big announcements keep coming (a 4 KiB receive buffer and a
1400-byte segment size, as in test_slow_reader, so the server's send path fills after a few
dozen items). Its subscription's queue (STREAM_QUEUE_SIZE) overflows; the server must then tell
it, as ActionCable does, `{"type": "disconnect", "reconnect": true}` and close the socket, rather
than keep the socket open and pinging with a channel that delivers nothing any more. A client
that reconnects and subscribes with the last seq it saw gets every other item exactly once.
"""

from __future__ import annotations

import asyncio
import time

from tests.reliability.cable import CableClient
from tests.reliability.conftest import QUEUE_SIZE, REPLAY_LIMIT, announce, register, register_admin, wait_for_seq

ITEMS = 120
TITLE = 190
BODY = 2000
PRODUCERS = 3


async def test_an_overflowing_cable_subscription_is_told_to_reconnect_and_resumes_exactly_once(http, session, server):
    assert ITEMS <= REPLAY_LIMIT
    admin = await register_admin(http, session)
    member = await register(http)
    cable = await CableClient.open(server.url, member.token, rcvbuf=4096, max_queue=1)
    seqs: list[int] = []
    try:
        await cable.expect("welcome")
        await cable.subscribe(last_seq=0)
        opening = await cable.message(10)
        assert opening is not None and opening["type"] == "notification_count", opening

        # From here the client reads nothing while the items are announced.
        numbers = iter(range(1, ITEMS + 1))

        async def produce() -> None:
            for n in numbers:
                await announce(http, admin, f"big {n} " + "t" * TITLE, f"{n:06d}" + "b" * (BODY - 6))

        started = time.monotonic()
        await asyncio.gather(*(produce() for _ in range(PRODUCERS)))
        await wait_for_seq(http, member, ITEMS)
        produced = time.monotonic() - started

        # Reading again: what was on its way, then the disconnect, then the end of the socket.
        disconnect = None
        deadline = time.monotonic() + 30
        while True:
            try:
                message = await cable.message(max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                raise AssertionError(
                    f"the socket stayed open and silent after {len(seqs)} of {ITEMS} items: "
                    "the overflowed subscription was left dead"
                ) from None
            if message is None:
                break
            if message.get("type") == "new_notification":
                assert disconnect is None, "a notification after the disconnect"
                seqs.append(message["notification"]["seq"])
            elif message.get("type") == "disconnect":
                disconnect = message
    finally:
        await cable.close()
    print(
        f"\n[cable slow reader] {ITEMS} items announced in {produced:.1f} s; the stalled client "
        f"(queue {QUEUE_SIZE}) read {len(seqs)} items, then {disconnect}"
    )
    assert disconnect is not None, f"the socket closed without a disconnect message after {len(seqs)} items"
    assert disconnect["reconnect"] is True and disconnect["reason"]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # what came is in order, without gaps
    assert len(seqs) < ITEMS, "the subscription never overflowed: the test proves nothing"

    # The client reconnects and resubscribes with the last seq it saw.
    last = seqs[-1] if seqs else 0
    again = await CableClient.open(server.url, member.token)
    try:
        await again.expect("welcome")
        await again.subscribe(last_seq=last)
        deadline = time.monotonic() + 30
        while len(seqs) < ITEMS:
            message = await again.message(max(deadline - time.monotonic(), 0.01))
            assert message is not None, "the socket closed"
            if message["type"] == "new_notification":
                seqs.append(message["notification"]["seq"])
        after = await again.until_ping(10)
        assert "new_notification" not in [m.get("type") for m in after], after
    finally:
        await again.close()
    assert seqs == list(range(1, ITEMS + 1))  # every item exactly once, in order
