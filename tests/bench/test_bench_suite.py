"""The performance suite still runs: a smoke run at its smallest size prints every row of its
table with numbers. No speed is asserted here (the suite's verdicts are for people to read)."""

from __future__ import annotations

import re
import subprocess
import sys

from webapp.settings import PROJECT_ROOT

ROWS = [
    "API read req/s (1,000 notifications)",
    "API read server CPU ms/req (1,000)",
    "healthz req/s",
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
NUMBER = r"\s+-?\d+\.\d+"


def test_smoke_run_prints_every_row_with_numbers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--size", "smoke"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for figure in ROWS:
        assert re.search(re.escape(figure) + NUMBER, done.stdout), f"no figure for {figure!r}:\n{done.stdout}"
    assert re.search(r"load average before: [\d.]+ [\d.]+ [\d.]+; after: [\d.]+", done.stdout)
    assert re.search(r"client CPU", done.stdout)
