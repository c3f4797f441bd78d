"""Exactly once, in order, across 200 forced disconnects while notifications keep arriving.

A producer announces through the server (so the live path, with its doorbell, is exercised)
while a consumer connects, handles a random small number of events, drops the connection and
reconnects with the last id it handled (what a browser's EventSource does), 200 times. Some
connections end before the replay of the backlog is finished, some mid-live, some before any
event. At the end the consumer must have handled seq 1..N once each, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time

import httpx

from tests.reliability.conftest import REPLAY_LIMIT, announce, register, register_admin, wait_for_seq
from tests.reliability.sse import Closed, Event, open_stream

RECONNECTS = 200
MAX_ITEMS = 600
MAX_BACKLOG = 25  # the producer waits while the consumer is this far behind (well under the replay limit)
READS = [0, 1, 1, 2, 2, 3, 3, 4, 5]  # events a connection handles before hanging up (~2.3 on average)
REFUSED_LIMIT = 5.0  # a slot not yet released after this long never will be
PER_CONNECTION = 1.0  # seconds a connection may wait for its events before the consumer drops it


async def test_exactly_once_in_order_across_200_forced_disconnects_while_notifications_arrive(server, session):
    seed = int(os.environ.get("RELIABILITY_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    assert MAX_BACKLOG < REPLAY_LIMIT
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=5)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as producer_http,
        httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as consumer_http,
    ):
        admin = await register_admin(producer_http, session)
        member = await register(producer_http)

        handled: list[int] = []  # seqs in the order the consumer handled them
        produced = 0
        consumer_done = asyncio.Event()
        progress = asyncio.Event()  # set whenever the consumer handles an item
        stats = {"refused": 0, "ended_by_server": 0, "timeouts": 0, "zero_read": 0}

        async def producer() -> None:
            nonlocal produced
            while produced < MAX_ITEMS and not consumer_done.is_set():
                if produced - (handled[-1] if handled else 0) >= MAX_BACKLOG:
                    progress.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(progress.wait(), 0.1)
                    continue
                await announce(producer_http, admin, f"item {produced + 1}")
                produced += 1

        async def connection(last_id: str, wanted: int) -> str:
            """One connection: handle up to `wanted` notifications, then hang up."""
            deadline = time.monotonic() + REFUSED_LIMIT
            while True:  # a refusal because the previous connection is not yet reaped is retried
                async with open_stream(consumer_http, member.token, last_event_id=last_id) as stream:
                    if stream.status == 429:
                        stats["refused"] += 1
                        assert time.monotonic() < deadline, (
                            f"after {reconnects} reconnects ({len(handled)} items handled), new streams were "
                            f"refused for {REFUSED_LIMIT} s: the slots of closed streams are not released"
                        )
                        await asyncio.sleep(0.05)
                        continue
                    assert stream.status == 200, (stream.status, stream.body)
                    if wanted == 0:
                        stats["zero_read"] += 1
                        return last_id
                    got = 0
                    give_up = time.monotonic() + PER_CONNECTION
                    while got < wanted:
                        try:
                            item = await stream.next_event(give_up - time.monotonic())
                        except TimeoutError:
                            stats["timeouts"] += 1
                            return last_id
                        if isinstance(item, Closed):
                            stats["ended_by_server"] += 1  # e.g. its queue overflowed: resume
                            return last_id
                        assert isinstance(item, Event)
                        if item.event == "reset":
                            raise AssertionError(f"reset after {last_id} (seq {item.id}): continuity lost")
                        if item.event == "new_notification":
                            body = item.json()
                            assert item.id == str(body["seq"]), item
                            handled.append(body["seq"])
                            progress.set()
                            last_id = item.id or last_id
                            got += 1
                    return last_id

        started = time.monotonic()
        producing = asyncio.create_task(producer())
        last_id = "0"
        reconnects = 0
        try:
            for reconnects in range(RECONNECTS):
                last_id = await connection(last_id, rng.choice(READS))
        finally:
            consumer_done.set()
            await producing
        await wait_for_seq(producer_http, member, produced)  # each announcement: one notification each
        total = produced

        # The final drain: one more connection reads everything that is left.
        async with open_stream(consumer_http, member.token, last_event_id=last_id) as stream:
            assert stream.status == 200, stream.body
            rest = await stream.notifications(total - (handled[-1] if handled else 0), within=30)
            handled += [int(e.id or 0) for e in rest]
            after = await stream.until_heartbeat(10)
            assert "new_notification" not in [e.event for e in after], after
        elapsed = time.monotonic() - started

    duplicates = len(handled) - len(set(handled))
    missing = sorted(set(range(1, total + 1)) - set(handled))
    out_of_order = sum(1 for a, b in zip(handled, handled[1:], strict=False) if b != a + 1)
    print(
        f"\n[exactly once] seed {seed}: {total} notifications, {RECONNECTS} reconnects (+1 final drain), "
        f"handled {len(handled)}, duplicates {duplicates}, missing {len(missing)}, out of order {out_of_order}, "
        f"elapsed {elapsed:.1f} s; connections read nothing {stats['zero_read']}, timed out {stats['timeouts']}, "
        f"ended by the server {stats['ended_by_server']}, refused (429) and retried {stats['refused']}"
    )
    assert total >= RECONNECTS, f"only {total} notifications were produced"
    assert duplicates == 0, f"seed {seed}: duplicates"
    assert not missing, f"seed {seed}: missing {missing[:20]}"
    assert handled == list(range(1, total + 1)), f"seed {seed}: out of order"
