"""Worker processes of `dramatiq jobs` and the `tidings scheduler` process serve their metrics on
ports of their own (failures, retries and dead letters by actor are tested with the broker itself,
in tests/jobs/test_retries.py; what a tick counts, in tests/jobs/test_scheduler_turns.py)."""

from __future__ import annotations

import re
import time

import httpx

from tests.conftest import TEST_SECRET
from tests.observability.conftest import Scrape
from tests.services import LiveScheduler, LiveWorker, free_port, scaled_env


def test_each_worker_process_serves_its_own_metrics_port(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {**scaled_env(database_url, TEST_SECRET), "WORKER_METRICS_PORT": str(port), "LOG_LEVEL": "INFO"}
    worker = LiveWorker(env, tmp_path / "worker.log", threads=1, processes=2)
    worker.start()
    try:
        deadline = time.monotonic() + 90
        ports: list[int] = []
        while time.monotonic() < deadline and len(ports) < 2:
            ports = [
                int(p) for p in re.findall(r"worker metrics on http://127\.0\.0\.1:(\d+)/", worker.log_path.read_text())
            ]
            time.sleep(0.2)
        assert len(set(ports)) == 2, worker.log_path.read_text()[-2000:]
        for taken in ports:
            assert port <= taken < port + 16  # the next free ports from WORKER_METRICS_PORT on
            response = httpx.get(f"http://127.0.0.1:{taken}/metrics", timeout=5)
            assert response.status_code == 200
            assert "tidings_job_failures" in response.text
    finally:
        worker.stop()


def test_the_scheduler_serves_its_metrics_on_its_own_port(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {
        **scaled_env(database_url, TEST_SECRET),
        "SCHEDULER_METRICS_PORT": str(port),
        "SCHEDULER_INTERVAL_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }
    scheduler = LiveScheduler(env, tmp_path / "scheduler.log")
    scheduler.start()
    try:
        deadline = time.monotonic() + 90
        ticks = 0.0
        while time.monotonic() < deadline and ticks < 2:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            ticks = Scrape(text).value("tidings_scheduler_ticks_total", outcome="completed")
            time.sleep(0.2)
        assert ticks >= 2, scheduler.log_path.read_text()[-2000:]
        reading = Scrape(text)
        assert reading.value("tidings_scheduler_tick_seconds_count") >= 2
        assert f"scheduler metrics on http://127.0.0.1:{port}/metrics" in scheduler.log_path.read_text()
    finally:
        scheduler.stop()
