"""The operations page of a scaled deployment: a web process, a `dramatiq jobs` worker and the
scheduler on Redis. Queue depth and dead letters are read from the real Redis broker under the
deployment's namespace, the outbox lag from the database, and the worker and the scheduler record
their own samples (the notifications the worker's fan-outs create count there, in no web process)."""

from __future__ import annotations

import asyncio
import time

import httpx
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from tests.conftest import TEST_SECRET
from tests.ops_page import breakdown, figure
from tests.reliability.conftest import Account, announce, bearer, register, register_admin
from tests.services import REDIS_URL, LiveScheduler, LiveServer, LiveWorker, scaled_env
from webapp.ops.views import seconds

WAIT = 30.0


def processes(html: str, kind: str) -> int:
    return breakdown(html, "kind", kind)


async def until(http: httpx.AsyncClient, admin: Account, check, what: str) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT
    while True:
        response = await http.get("/admin/ops", headers=bearer(admin))
        assert response.status_code == 200
        if check(response.text):
            return response.text
        assert time.monotonic() < deadline, f"never: {what}; the page showed " + ", ".join(
            f"{name} {figure(response.text, name)}"
            for name in ("queue_depth", "dead_letters", "outbox_lag", "notifications", "processes")
        )
        await asyncio.sleep(0.2)


async def test_queue_depth_dead_letters_and_worker_samples_on_the_redis_broker(database_url, session, tmp_path):
    env = {**scaled_env(database_url, TEST_SECRET), "OPS_SAMPLE_SECONDS": "0.3", "ANNOUNCEMENTS_PER_HOUR": "1000"}
    namespace = env["JOBS_NAMESPACE"]
    web = LiveServer(env, tmp_path / "web.log")
    # One quick retry: the message below lands in the dead-letter queue within a second.
    quick = {"JOBS_MAX_RETRIES": "1", "JOBS_MIN_BACKOFF_MS": "100", "JOBS_MAX_BACKOFF_MS": "200"}
    worker = LiveWorker({**env, **quick}, tmp_path / "worker.log")
    scheduler = LiveScheduler(env, tmp_path / "scheduler.log")
    web.start()
    try:
        async with httpx.AsyncClient(base_url=web.url, timeout=30) as http:
            admin = await register_admin(http, session)
            await register(http)
            # No worker runs yet: the announcement's fan-out waits in the queue, its outbox row pending.
            await announce(http, admin, "Queued for now")
            await until(http, admin, lambda html: figure(html, "queue_depth") == "1", "queue depth 1")
            # A job no run can finish (an argument its actor does not take), through the real broker.
            broker = RedisBroker(url=REDIS_URL, namespace=namespace)
            broker.declare_queue("fanout")
            broker.enqueue(Message("fanout", "fan_out_announcement", (), {"no_such_argument": 1}, {}))
            waiting = await until(http, admin, lambda html: figure(html, "queue_depth") == "2", "queue depth 2")
            assert figure(waiting, "outbox_lag") != seconds(0)
            assert figure(waiting, "dead_letters") == "0"
            assert processes(waiting, "worker") == 0

            worker.start()
            scheduler.start()
            done = await until(
                http,
                admin,
                lambda html: (
                    figure(html, "queue_depth") == "0"
                    and figure(html, "dead_letters") == "1"
                    and figure(html, "outbox_lag") == seconds(0)
                    and processes(html, "worker") == 1
                ),
                "the worker ran the announcement and dead-lettered the bad job",
            )
            # two notifications (admin and member), created by the worker: only its samples know them
            # this web process (the session's browser-test server shares the database and may report too)
            assert processes(done, "web") >= 1
            await until(
                http, admin, lambda html: float(figure(html, "notifications")) >= 2, "the worker's notifications"
            )
    finally:
        scheduler.stop()
        worker.stop()
        web.stop()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)
        client.close()
