"""Real services the tests run against: the database under test, Redis, a live server.

With CI=true a missing service is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from webapp.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REDIS_URL = os.environ.get("TIDINGS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LIMIT_WINDOW_EDGES_SECONDS = Settings.login_window_seconds  # 300; the hour's 3,600 is a multiple


def race_loop_seconds(database_url: str) -> float:
    """How long a test that repeats a race looks for a deadlock: on PostgreSQL, where
    transactions truly interleave, 20 s (a few hundred rounds); on SQLite, which runs one writer
    at a time, 5 s. DEADLOCK_LOOP_SECONDS makes a longer soak by hand."""
    default = "20" if database_url.startswith("postgresql") else "5"
    return float(os.environ.get("DEADLOCK_LOOP_SECONDS", default))


async def clear_of_a_limit_window_edge(needed_seconds: float = 15) -> None:
    """Abuse limits count in fixed windows aligned to the clock (webapp.ratelimit): a test that
    counts up to a limit fails if a window ends half-way through it, the count starting again at
    zero. This waits out the current 300 s window when it has less than `needed_seconds` left;
    the hour's windows end on such an edge too."""
    left = LIMIT_WINDOW_EDGES_SECONDS - time.time() % LIMIT_WINDOW_EDGES_SECONDS
    if left < needed_seconds:
        await asyncio.sleep(left + 0.1)


def missing_service(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service fails the run)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_available(url: str = REDIS_URL) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def throwaway_postgres_database(base_url: str) -> Iterator[str]:
    """A uniquely named database on the server of base_url, dropped afterwards."""
    import asyncio

    import asyncpg

    name = f"tidings_test_{uuid.uuid4().hex[:10]}"
    plain = base_url.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(plain, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        missing_service(f"PostgreSQL at {urlsplit(base_url).hostname} is not available: {exc}")
    try:
        yield with_database(base_url, name)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class LiveServer:
    """`tidings serve` in a subprocess, on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path, start_within: float = 90) -> None:
        self.start_within = start_within
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Suites sign up and invite many people from one address: a test of those limits sets its own.
        unlimited = {"REGISTRATIONS_PER_HOUR": "1000000", "INVITATIONS_PER_HOUR": "1000000"}
        self.env = {**os.environ, **unlimited, **env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self.env.setdefault("ALLOWED_ORIGINS", self.url)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tidings"], cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.start_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()  # not left running for nobody to stop
        raise RuntimeError(f"server did not start within {self.start_within} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class LiveWorker:
    """`dramatiq jobs` worker processes (the scaled mode), in their own process group so a test
    can SIGKILL them mid-job."""

    def __init__(self, env: dict[str, str], log_path: Path, threads: int = 2, processes: int = 1) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.threads = threads
        self.processes = processes
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        dramatiq_cli = Path(sys.executable).with_name("dramatiq")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(dramatiq_cli), "jobs", "-p", str(self.processes), "-t", str(self.threads)],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a crashed or OOM-killed worker looks like to the broker."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class LiveScheduler(LiveWorker):
    """`tidings scheduler`, the scaled deployment's single scheduler, in a process group of its own."""

    def start(self) -> None:
        tidings_cli = Path(sys.executable).with_name("tidings")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(tidings_cli), "scheduler"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def scaled_env(database_url: str, secret: str) -> dict[str, str]:
    """Settings for web and worker processes of one scaled deployment on the shared Redis; a
    namespace of its own keeps its job queues apart from any other run's."""
    if not redis_available():
        missing_service(f"Redis is not answering at {REDIS_URL}")
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": secret,
        "REDIS_URL": REDIS_URL,
        "JOBS_NAMESPACE": f"tidings-test-{uuid.uuid4().hex[:8]}",
        "JOBS_HEARTBEAT_TIMEOUT_MS": "3000",
        "JOBS_MAINTENANCE_CHANCE": "100000",
        "LOG_LEVEL": "WARNING",
    }
