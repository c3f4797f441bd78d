"""The performance suite still runs: a smoke run at its smallest size prints every row of its
table with numbers. No speed is asserted here (the suite's verdicts are for people to read)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from webapp.settings import PROJECT_ROOT

ROWS = [
    "API read req/s (1,000 notifications)",
    "API read server CPU ms/req (1,000)",
    "healthz req/s",
    "Litestar's own hello req/s (reference)",
    "healthz req/s against Litestar's own hello",
    "stream opens/s (200)",
    "stream opens per server CPU-s (200)",
    "streams refused or dropped (200)",
    "idle KB per stream (200)",
    "mark-as-read p50 ms (at 20/s)",
    "mark-as-read p99 ms (at 20/s)",
    "reconnects with Last-Event-ID, all live s (200)",
    "replay lost, twice or refused (200)",
    "broadcast to 200 live: p95 s",
    "broadcast to 200 live: last s",
]
# On PostgreSQL the storm also runs scaled out, over one web process per core (README, "Scaling out").
SCALED_ROWS = [
    f"reconnects, {os.cpu_count() or 1} web processes, all live s (200)",
    f"replay lost, twice or refused, {os.cpu_count() or 1} processes (200)",
]
NUMBER = r"\s+-?\d+\.\d+"


def test_smoke_run_prints_every_row_with_numbers() -> None:
    """On the database the tests run on: SQLite, or the PostgreSQL server of the CI's second leg."""
    postgres = os.environ.get("TIDINGS_TEST_DATABASE_URL", "")
    database = ["--postgres", postgres] if postgres.startswith("postgresql") else []
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--size", "smoke", *database],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for figure in ROWS + (SCALED_ROWS if database else []):
        assert re.search(re.escape(figure) + NUMBER, done.stdout), f"no figure for {figure!r}:\n{done.stdout}"
    assert re.search(r"load average before: [\d.]+ [\d.]+ [\d.]+; after: [\d.]+", done.stdout)
    assert re.search(r"client CPU", done.stdout)
