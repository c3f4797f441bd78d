"""`make run` as a newcomer meets it: a taken port is one clear line, the demo is alive whenever it
is loaded (its events relative to now, its notifications already there), and a quiet log."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import TEST_SECRET
from webapp.settings import PROJECT_ROOT

TIDINGS = str(Path(sys.executable).with_name("tidings"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_LEVEL", "REDIS_URL", "PORT", "HOST")}
    return {**env, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", "SECRET_KEY": TEST_SECRET, **extra}


def _run(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TIDINGS, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_answering(port: int, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the server on port {port} did not answer within {within} s")


def test_a_taken_port_is_one_clear_line_and_nothing_starts(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _run("db", "upgrade", env=env).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run("serve", "--port", str(port), env=env, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert f"port {port}" in lines[0] and "--port" in lines[0] and "PORT=" in lines[0]
    # nothing ran before the port was bound: no application startup, no scheduler, no workers
    assert "startup" not in output.lower() and "scheduler" not in output.lower()


def _soonest_reminder_event(db: Path) -> tuple[datetime, int]:
    with sqlite3.connect(db) as conn:
        (starts,) = conn.execute("SELECT starts_at FROM events WHERE title = 'Rooftop Jazz Evening'").fetchone()
        (count,) = conn.execute("SELECT count(*) FROM notifications").fetchone()
    return datetime.fromisoformat(str(starts)).replace(tzinfo=UTC), int(count)


def test_the_demo_is_alive_whenever_it_is_loaded_and_fresh_moves_it_to_now(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _run("db", "upgrade", env=env).returncode == 0
    first = _run("seed-demo", env=env)
    assert first.returncode == 0, first.stderr
    assert "dev@example.com" in first.stdout and "pending" in first.stdout  # whose booking waits for payment
    starts, notifications = _soonest_reminder_event(tmp_path / "demo.db")
    # Its notifications are written before the command returns, not 30 s after the server starts.
    assert notifications >= 4  # three booking confirmations, dev's invitation
    assert timedelta(minutes=30) < starts - datetime.now(UTC) <= timedelta(minutes=36)

    # An hour later the event would have started: --fresh loads the demo again around now.
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        conn.execute(
            "UPDATE events SET starts_at = datetime(starts_at, '-1 day'), ends_at = datetime(ends_at, '-1 day')"
        )
        conn.execute(
            "INSERT INTO users (email, name, password_hash, timezone, role, created_at) "
            "SELECT 'newcomer@example.com', 'Newcomer', password_hash, timezone, role, created_at "
            "FROM users WHERE email = 'eli@example.com'"
        )
    again = _run("seed-demo", env=env)
    assert again.returncode == 0 and "already present" in again.stdout and "--fresh" in again.stdout
    fresh = _run("seed-demo", "--fresh", env=env)
    assert fresh.returncode == 0, fresh.stderr
    starts, notifications = _soonest_reminder_event(tmp_path / "demo.db")
    assert timedelta(minutes=30) < starts - datetime.now(UTC) <= timedelta(minutes=36)
    assert notifications >= 4  # three booking confirmations, dev's invitation
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE email = 'newcomer@example.com'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM events WHERE ends_at < datetime('now')").fetchone()[0] >= 1


def test_the_default_log_is_quiet_when_nothing_happens(tmp_path: Path) -> None:
    env = _env(tmp_path, SCHEDULER_INTERVAL_SECONDS="0.5")
    assert _run("db", "upgrade", env=env).returncode == 0
    port = _free_port()
    server = subprocess.Popen(
        [TIDINGS, "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until_answering(port)
        time.sleep(6)  # a dozen scheduler ticks with nothing to do
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert f"127.0.0.1:{port}" in output
    noisy = [line for line in output.splitlines() if "apscheduler" in line or "Event loop is running" in line]
    assert noisy == [], noisy
    # nothing is said once per scheduler tick (a dozen ran): no message comes back again and again
    messages = Counter(line.split(" ", 3)[-1] for line in output.splitlines())
    assert max(messages.values()) < 3, output
