"""A stream whose client left before the response body began never runs, so it never closes its
doorbell subscription itself: the hub releases it (and with it the user's connection slot) once
the grace has passed, without waiting for anyone to open another stream."""

from __future__ import annotations

import asyncio
import time

from webapp.realtime.doorbell import Hub

GRACE = 0.05


async def wait_for(condition, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(GRACE / 5)


async def test_a_subscription_never_started_is_released_after_the_grace():
    hub = Hub(unstarted_grace=GRACE)
    abandoned = hub.subscribe(7, 8)
    running = hub.subscribe(7, 8)
    running.started = True
    assert hub.total() == 2
    await wait_for(lambda: hub.total() == 1)  # nobody called count(): the hub released it by itself
    hub.deliver({"type": "new", "user": 7, "seq": 1})
    assert abandoned.pending == []  # no longer rung
    assert len(running.pending) == 1
    assert hub.count(7) == 1
    running.close()
    assert hub.total() == 0


def test_streams_without_a_subscription_hear_when_the_process_closes_its_streams():
    from webapp.realtime.doorbell import CLOSE, RESYNC

    hub = Hub()
    heard: list[str] = []
    forget = hub.when_closing(lambda: heard.append("first"))
    hub.when_closing(lambda: heard.append("second"))
    hub.broadcast(RESYNC)
    assert heard == []
    hub.broadcast(CLOSE)
    assert sorted(heard) == ["first", "second"]
    forget()
    hub.broadcast(CLOSE)
    assert heard.count("first") == 1


async def test_a_subscription_hands_over_its_messages_in_order_and_waits_for_the_next():
    hub = Hub()
    subscription = hub.subscribe(4, 8)
    subscription.offer({"type": "new", "seq": 1})
    subscription.offer({"type": "new", "seq": 2})
    assert await subscription.next(1.0) == {"type": "new", "seq": 1}
    assert await subscription.next(1.0) == {"type": "new", "seq": 2}
    assert await subscription.next(0.01) is None  # nothing came within the wait
    waiting = asyncio.ensure_future(subscription.next(5.0))
    await asyncio.sleep(0)
    subscription.offer({"type": "count", "version": 3})
    assert await asyncio.wait_for(waiting, 1.0) == {"type": "count", "version": 3}
    assert (subscription.heard_seq, subscription.heard_version) == (2, 3)
    subscription.close()


async def test_a_subscription_that_falls_behind_is_told_to_close_and_hears_nothing_more():
    from webapp.realtime.doorbell import CLOSE

    hub = Hub()
    subscription = hub.subscribe(4, 2)
    for seq in (1, 2, 3):
        subscription.offer({"type": "new", "seq": seq})
    assert subscription.overflowed
    subscription.offer({"type": "new", "seq": 4})
    assert await subscription.next(1.0) == CLOSE
    assert await subscription.next(0.01) is None
    subscription.close()
