"""Scaled mode (REDIS_URL): the doorbell crosses processes through Redis pub/sub.

Two web processes share the database and the Redis at tests.services.REDIS_URL, with a job
worker (scaled mode runs background jobs such as announcement fan-out in `dramatiq jobs`), on a
job namespace of their own (tests.services.scaled_env). A second test runs its own redis-server, kills it mid-stream and
starts it again: notifications committed while it was down (the doorbell publish fails) must
still reach the open stream, exactly once, once the server's listener is back.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import TEST_SECRET
from tests.reliability.conftest import (
    RUNNING,
    WATCHED_LOGS,
    add_notifications,
    announce,
    bearer,
    clean_shutdown,
    log_tail,
    register,
    register_admin,
    server_env,
    start_all,
    stop_all,
    wait_for_seq,
)
from tests.reliability.sse import Event, EventStream, open_stream
from tests.services import LiveServer, LiveWorker, free_port, missing_service, redis_available, scaled_env
from webapp.realtime.doorbell import RedisDoorbell, current_doorbell, set_doorbell
from webapp.settings import load_settings

LATENCY_LIMIT = 2.0


class Worker(LiveWorker):
    """LiveWorker, stopped by a SIGTERM to dramatiq's main process only: it forwards the signal
    to its worker processes itself, and a second one sent straight to them (a SIGTERM to the
    whole group) leaves the main process waiting until LiveWorker's 15 s timeout kills it."""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def pair(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    scaled = scaled_env(database_url, TEST_SECRET)  # the shared Redis (or a skip/failure), own job namespace
    folder = tmp_path_factory.mktemp("redis-pair")
    a = LiveServer(server_env(database_url, **scaled), folder / "a.log")
    b = LiveServer(server_env(database_url, **scaled), folder / "b.log")
    # A browser may use either web process's address.
    a.env["ALLOWED_ORIGINS"] = b.env["ALLOWED_ORIGINS"] = f"{a.url},{b.url}"
    worker = Worker(server_env(database_url, **scaled), folder / "worker.log")
    WATCHED_LOGS.extend([a.log_path, b.log_path, worker.log_path])
    start_all([a, b, worker])
    RUNNING.extend([a, b, worker])
    try:
        yield a, b
    finally:
        with clean_shutdown([a.log_path, b.log_path, worker.log_path]):
            stop_all([a, b, worker])
        for process in (a, b, worker):
            RUNNING.remove(process)


async def next_notification(stream: EventStream, within: float) -> Event:
    [event] = await stream.notifications(1, within)
    return event


async def test_two_web_processes_with_redis_deliver_each_others_notifications(pair, session):
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        admin = await register_admin(on_b, session)
        member = await register(on_a)
        async with (
            open_stream(on_a, member.token, last_event_id=0) as stream_a,
            open_stream(on_b, member.token, last_event_id=0) as stream_b,
        ):
            assert stream_a.status == 200 and stream_b.status == 200
            # Warm-up: until both listeners and the worker are up, a ring can go unheard; the
            # next one then fills the gap from the database. Announce until A has heard one.
            seq = 0
            warm_until = time.monotonic() + 45
            while True:
                await announce(on_b, admin, f"warm-up {seq + 1}")
                seq += 1
                try:
                    await stream_a.notifications(1, within=3)
                    break
                except AssertionError:
                    assert time.monotonic() < warm_until, f"nothing reached A within 45 s:\n{log_tail(a)}"
            await wait_for_seq(on_a, member, seq)
            seen_a = 1
            while seen_a < seq:  # the other warm-up items, if any
                seen_a += len(await stream_a.notifications(seq - seen_a, within=10))
            assert len(await stream_b.notifications(seq, within=10)) == seq

            latencies = {"B→A": [], "A→B": []}
            for round_ in range(3):
                for origin, http, target, other in (("B", on_b, stream_a, stream_b), ("A", on_a, stream_b, stream_a)):
                    seq += 1
                    title = f"from {origin} {round_}"
                    sent = time.monotonic()
                    await announce(http, admin, title)
                    event = await next_notification(target, within=10)
                    latency = time.monotonic() - sent
                    assert (event.id, event.json()["title"]) == (str(seq), title), event
                    latencies["B→A" if origin == "B" else "A→B"].append(latency)
                    local = await next_notification(other, within=10)
                    assert local.id == str(seq)

            # A change made through one web process (marking read, no job involved) reaches the other's streams.
            sent = time.monotonic()
            response = await on_b.post(f"/api/v1/notifications/{event.json()['id']}/read", headers=bearer(member))
            assert response.status_code == 200, response.text
            read_latency = None
            deadline = sent + 10
            while read_latency is None:
                item = await stream_a.next_event(deadline - time.monotonic())
                if isinstance(item, Event) and item.event == "notification_read":
                    assert event.json()["id"] in item.json()["ids"], item
                    read_latency = time.monotonic() - sent

    def fmt(values: list[float]) -> str:
        return ", ".join(f"{v * 1000:.0f}" for v in values)

    print(
        f"\n[redis] announcement → stream latency (ms): B→A {fmt(latencies['B→A'])}; A→B {fmt(latencies['A→B'])}; "
        f"read on B → notification_read on A {read_latency * 1000:.0f} ms"
    )
    worst = max(max(v) for v in latencies.values())
    assert worst <= LATENCY_LIMIT, f"cross-process delivery took {worst:.2f} s"
    assert read_latency <= LATENCY_LIMIT


# ---- Redis restarted mid-stream ---------------------------------------------------------------


class RedisProcess:
    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing_service("redis-server is not installed")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while not redis_available(self.url):
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # a crash, not a shutdown
            self.process.wait(timeout=10)


async def subscribers(url: str, channel: str) -> int:
    client = Redis.from_url(url)
    try:
        counts = await client.pubsub_numsub(channel)
        return int(counts[0][1]) if counts else 0
    finally:
        await client.aclose()


async def test_redis_restarted_mid_stream_loses_nothing(database_url, session, tmp_path_factory):
    folder = tmp_path_factory.mktemp("redis-restart")
    redis = RedisProcess(free_port(), folder / "redis.log")
    redis.start()
    env = server_env(database_url, REDIS_URL=redis.url)
    server = LiveServer(env, folder / "server.log")
    WATCHED_LOGS.append(server.log_path)
    # This process rings the server through Redis, in the server's namespace.
    bell = RedisDoorbell.from_settings(load_settings({**env, "SECRET_KEY": TEST_SECRET}), listen=False)
    previous = current_doorbell()
    try:
        server.start()
        deadline = time.monotonic() + 20
        while await subscribers(redis.url, bell.channel) < 1:  # the server's doorbell listener is on the channel
            assert time.monotonic() < deadline, f"the server never subscribed:\n{log_tail(server)}"
            await asyncio.sleep(0.05)
        set_doorbell(bell)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            member = await register(http)
            async with open_stream(http, member.token, last_event_id=0) as stream:
                assert stream.status == 200, stream.body
                assert (await stream.next_event(10)).event == "notification_count"

                await add_notifications(session, member.id, 2, "before")
                before = await stream.notifications(2, within=10)  # live, through Redis

                redis.stop()
                await add_notifications(session, member.id, 5, "during")  # committed; the publish fails
                await wait_for_seq(http, member, 7)

                redis.start()
                restarted = time.monotonic()
                during = await stream.notifications(5, within=20)
                caught_up = time.monotonic() - restarted

                deadline = time.monotonic() + 20
                while await subscribers(redis.url, bell.channel) < 1:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                await add_notifications(session, member.id, 2, "after")
                after = await stream.notifications(2, within=10)
                quiet = await stream.until_heartbeat(10)
    finally:
        set_doorbell(previous)
        await bell.stop()
        server.stop()
        redis.stop()
    received = [int(e.id or 0) for e in before + during + after]
    print(
        f"\n[redis restart] the 5 notifications committed while Redis was down arrived {caught_up:.2f} s "
        "after it came back"
    )
    assert received == list(range(1, 10)), received
    assert [e.json()["title"] for e in during] == [f"during {i}" for i in range(5)]
    assert "new_notification" not in [e.event for e in quiet], quiet  # nothing twice
