"""Operating Tidings by hand: the settings jobs read are settings (a bad value is a clear error,
not a traceback), `tidings serve --port P` allows its own origin, `tidings db upgrade` says what
it did."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET
from tests.services import LiveWorker, scaled_env
from webapp.settings import PROJECT_ROOT, SettingsError, get_settings, load_settings

JOB_SETTINGS = {
    "JOBS_MAX_RETRIES": "jobs_max_retries",
    "JOBS_MIN_BACKOFF_MS": "jobs_min_backoff_ms",
    "JOBS_MAX_BACKOFF_MS": "jobs_max_backoff_ms",
    "JOBS_TIME_LIMIT_MS": "jobs_time_limit_ms",
    "JOBS_HEARTBEAT_TIMEOUT_MS": "jobs_heartbeat_timeout_ms",
    "JOBS_MAINTENANCE_CHANCE": "jobs_maintenance_chance",
    "JOBS_FANOUT_CHUNK_SIZE": "jobs_fanout_chunk_size",
    "EMBEDDED_WORKER_THREADS": "embedded_worker_threads",
    "SCHEDULER_INTERVAL_SECONDS": "scheduler_interval_seconds",
    "REVIEW_REQUEST_DELAY_MINUTES": "review_request_delay_minutes",
    "OUTBOX_GRACE_SECONDS": "outbox_grace_seconds",
    "OUTBOX_REDELIVER_SECONDS": "outbox_redeliver_seconds",
    "OUTBOX_MAX_ATTEMPTS": "outbox_max_attempts",
    "OUTBOX_RETENTION_DAYS": "outbox_retention_days",
    "RETENTION_REMINDERS_DAYS": "retention_reminders_days",
    "RETENTION_NOTIFICATIONS_DAYS": "retention_notifications_days",
    "RETENTION_BATCH_SIZE": "retention_batch_size",
    "SCHEDULER_METRICS_PORT": "scheduler_metrics_port",
    "OPS_SAMPLE_SECONDS": "ops_sample_seconds",  # workers record samples for the operations page too
}


@pytest.mark.parametrize("name", sorted(JOB_SETTINGS))
def test_every_job_setting_is_read_by_the_settings_and_refused_clearly(name: str) -> None:
    assert getattr(load_settings({name: "700"}), JOB_SETTINGS[name]) == 700
    with pytest.raises(SettingsError, match=name):
        load_settings({name: "lots"})


def test_every_setting_the_code_reads_is_in_the_readme() -> None:
    """Every environment variable webapp/settings.py reads (and nothing else reads any: jobs/ go
    through the settings too) has a row in the README's settings table."""
    source = (PROJECT_ROOT / "webapp" / "settings.py").read_text()
    read = set(re.findall(r'(?:env\.get|number)\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "OUTBOX_GRACE_SECONDS", *JOB_SETTINGS} <= read
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Accounts and sessions")]
    missing = sorted(name for name in read if f"`{name}`" not in table)
    assert missing == [], f"settings read by the code but not in the README's table: {missing}"
    for package in ("jobs", "tidings"):
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            assert "os.environ.get(" not in path.read_text() and "getenv(" not in path.read_text(), path


def test_a_worker_with_a_bad_setting_stops_with_a_clear_message_not_a_traceback() -> None:
    env = {**os.environ, "SECRET_KEY": TEST_SECRET, "REDIS_URL": "", "OUTBOX_GRACE_SECONDS": "half a minute"}
    done = subprocess.run(
        [sys.executable, "-c", "import jobs"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "OUTBOX_GRACE_SECONDS must be a number" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_a_port_allows_the_origins_of_that_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings.cli import serve_settings

    monkeypatch.delenv("ALLOWED_ORIGINS", raising=False)
    monkeypatch.setenv("PORT", "8000")
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    try:
        settings = serve_settings(host=None, port=8123)
        assert settings.port == 8123
        assert set(settings.allowed_origins) == {"http://127.0.0.1:8123", "http://localhost:8123"}
        assert get_settings() is settings  # what the rest of the process reads agrees
        monkeypatch.setenv("ALLOWED_ORIGINS", "https://tidings.example")
        assert serve_settings(host=None, port=8123).allowed_origins == ("https://tidings.example",)
    finally:
        get_settings.cache_clear()  # the environment is put back after the test; so is this


def test_db_upgrade_says_what_it_did(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET}
    tidings = [str(Path(sys.executable).with_name("tidings")), "db", "upgrade"]
    first = subprocess.run(tidings, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "from an empty database to" in first.stdout and "applied" in first.stdout
    again = subprocess.run(tidings, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already at" in again.stdout and "nothing to do" in again.stdout


def test_zero_embedded_worker_threads_is_allowed_and_a_negative_count_is_not() -> None:
    # Zero queues jobs in the web process without running them there (a crash test relies on it).
    assert load_settings({"EMBEDDED_WORKER_THREADS": "0"}).embedded_worker_threads == 0
    with pytest.raises(SettingsError, match="EMBEDDED_WORKER_THREADS must be zero or more"):
        load_settings({"EMBEDDED_WORKER_THREADS": "-1"})
    with pytest.raises(SettingsError, match="OUTBOX_MAX_ATTEMPTS must be positive"):
        load_settings({"OUTBOX_MAX_ATTEMPTS": "0"})


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry)) == pgid:
                    members.append(int(entry))
    return members


def test_a_sigterm_to_the_workers_process_group_stops_every_process_promptly(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What a supervisor that signals the whole group does (a terminal's Ctrl-C is SIGINT; systemd's
    default stop, `kill -TERM -PGID`): the main process forwards the SIGTERM to its worker
    processes, which also got it from the group. The second copy must not turn the graceful stop
    into a hung one."""
    env = {**scaled_env(database_url, TEST_SECRET), "LOG_LEVEL": "INFO"}
    worker = LiveWorker(env, tmp_path / "worker.log", threads=2, processes=2)
    worker.start()
    assert worker.process is not None
    try:
        deadline = time.monotonic() + 120
        while worker.log_path.read_text().count("ready for action") < 2:
            assert time.monotonic() < deadline, worker.log_path.read_text()[-2000:]
            assert worker.process.poll() is None, worker.log_path.read_text()[-2000:]
            time.sleep(0.2)
        stopping = time.monotonic()
        os.killpg(worker.process.pid, signal.SIGTERM)
        # Whether a worker process hears the forwarded copy as a second signal depends on whether
        # its handler ran before the copy arrived (pending signals merge): make sure it does.
        time.sleep(0.3)
        for pid in group_members(worker.process.pid):
            if pid != worker.process.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        assert worker.process.wait(timeout=20) == 0, worker.log_path.read_text()[-2000:]
        assert time.monotonic() - stopping < 15
        with pytest.raises(ProcessLookupError):  # nothing of the group is left
            os.killpg(worker.process.pid, 0)
        assert "Killing worker process" not in worker.log_path.read_text()
    finally:
        worker.kill()
