"""STREAM_MAX_LIFETIME_SECONDS: the server ends every stream after its lifetime; the client
resumes with Last-Event-ID and loses nothing, while notifications keep coming."""

from __future__ import annotations

import asyncio

import httpx

from tests.reliability.conftest import MAX_LIFETIME_SECONDS, announce, register, register_admin, wait_for_seq
from tests.reliability.sse import Closed, open_stream

CYCLES = 2  # streams the server ends by itself
ANNOUNCE_EVERY = 0.15


async def test_stream_ends_after_its_maximum_lifetime_and_resumes_without_loss(lifetime_server, session):
    async with httpx.AsyncClient(base_url=lifetime_server.url, timeout=30) as http:
        admin = await register_admin(http, session)
        member = await register(http)
        done = asyncio.Event()
        produced = 0

        async def producer() -> None:
            nonlocal produced
            while not done.is_set():
                await announce(http, admin, f"item {produced + 1}")
                produced += 1
                await asyncio.sleep(ANNOUNCE_EVERY)

        handled: list[int] = []
        lifetimes: list[float] = []
        producing = asyncio.create_task(producer())
        last_id = "0"
        try:
            for _ in range(CYCLES):
                async with open_stream(http, member.token, last_event_id=last_id) as stream:
                    assert stream.status == 200, stream.body
                    while True:
                        try:
                            item = await stream.next_event(MAX_LIFETIME_SECONDS + 8)
                        except TimeoutError:
                            raise AssertionError(
                                f"the stream outlived its {MAX_LIFETIME_SECONDS} s lifetime by 8 s"
                            ) from None
                        if isinstance(item, Closed):
                            assert item.error is None, item  # a clean end of the response
                            assert stream.closed_at is not None
                            lifetimes.append(stream.closed_at - stream.opened_at)
                            break
                        assert item.event != "reset", item
                        if item.event == "new_notification":
                            handled.append(int(item.id or 0))
                            last_id = item.id or last_id
        finally:
            done.set()
            await producing
        await wait_for_seq(http, member, produced)

        # The rest, over as many streams as that takes (each lives 2 s at most).
        deadline = asyncio.get_running_loop().time() + 30
        while (handled[-1] if handled else 0) < produced:
            assert asyncio.get_running_loop().time() < deadline, f"only {len(handled)} of {produced} arrived"
            async with open_stream(http, member.token, last_event_id=last_id) as stream:
                assert stream.status == 200, stream.body
                while (handled[-1] if handled else 0) < produced:
                    item = await stream.next_event(MAX_LIFETIME_SECONDS + 8)
                    if isinstance(item, Closed):
                        break
                    assert item.event != "reset", item
                    if item.event == "new_notification":
                        handled.append(int(item.id or 0))
                        last_id = item.id or last_id

    print(
        f"\n[lifetime] {produced} notifications over {CYCLES} streams that lived "
        f"{', '.join(f'{t:.2f}' for t in lifetimes)} s (limit {MAX_LIFETIME_SECONDS} s); handled {len(handled)}"
    )
    for lived in lifetimes:
        assert MAX_LIFETIME_SECONDS - 0.3 <= lived <= MAX_LIFETIME_SECONDS + 3, lifetimes
    assert produced >= CYCLES * MAX_LIFETIME_SECONDS  # notifications did arrive across the reconnects
    assert handled == list(range(1, produced + 1)), handled  # each once, in order, none lost
