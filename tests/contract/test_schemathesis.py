"""Schemathesis against a real server: every `/api/v1` operation of the OpenAPI description, with
all its default checks (no 5xx, documented statuses, content types and bodies, schema-valid data
accepted, schema-invalid data refused, `Allow` on 405 ...), authenticated with a Bearer token,
on the database under test (SQLite, or PostgreSQL with TIDINGS_TEST_DATABASE_URL).

Runs `st run` (Schemathesis' CLI) in a subprocess: it runs its coverage, fuzzing and stateful
phases and writes a JSON report, which this test reads and prints. Each operation gets
TIDINGS_SCHEMATHESIS_EXAMPLES examples (default 20: about a minute per database on two cores);
raise it for a deep run by hand, e.g. TIDINGS_SCHEMATHESIS_EXAMPLES=500.

The signed-in user owns an event, a group and a pending booking, so that the small ids the
generator tries name real objects and not only 404s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api import event_payload
from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET
from tests.services import PROJECT_ROOT, LiveServer

EXAMPLES = int(os.environ.get("TIDINGS_SCHEMATHESIS_EXAMPLES", "20"))
CONFIG = PROJECT_ROOT / "tests" / "schemathesis.toml"


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": "",
        # A stream answers for a second and ends, so the generator's requests to it finish.
        "STREAM_MAX_LIFETIME_SECONDS": "1",
        "STREAM_HEARTBEAT_SECONDS": "1",
    }
    live = LiveServer(env, tmp_path / "server.log")
    live.start()
    try:
        yield live
    finally:
        live.stop()


def signed_in_with_data(url: str) -> str:
    """A token for a user who owns an event, a group and a pending booking."""
    with httpx.Client(base_url=url, timeout=10) as client:
        account = {"email": "fuzz@example.com", "password": DEFAULT_PASSWORD, "name": "Fuzz", "timezone": "UTC"}
        response = client.post("/api/v1/auth/register", json=account)
        assert response.status_code == 201, response.text
        headers = {"Authorization": f"Bearer {response.json()['token']}"}
        event = client.post("/api/v1/events", json=event_payload(), headers=headers)
        assert event.status_code == 201, event.text
        booking = client.post(f"/api/v1/events/{event.json()['id']}/bookings", json={"seats": 1}, headers=headers)
        assert booking.status_code == 201, booking.text
        group = client.post("/api/v1/groups", json={"name": "Fuzzers"}, headers=headers)
        assert group.status_code == 201, group.text
        return str(response.json()["token"])


def test_every_api_operation_passes_schemathesis_default_checks(server: LiveServer, tmp_path: Path) -> None:
    token = signed_in_with_data(server.url)
    report_dir = tmp_path / "report"
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.url}/schema/openapi.json",
        "--include-path-regex",
        "^/api/v1/",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--report",
        "json",
        "--report-dir",
        str(report_dir),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)  # noqa: S603
    output = completed.stdout + completed.stderr
    reports = list(report_dir.glob("*.json"))
    assert reports, f"Schemathesis wrote no report:\n{output[-6000:]}"
    report = json.loads(reports[0].read_text())

    with httpx.Client() as client:
        schema = client.get(f"{server.url}/schema/openapi.json").json()
    api_operations = sum(
        1
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )
    operations, cases = report["operations"], report["test_cases"]
    print(  # the figures the run is judged by, shown with `pytest -s` or on failure
        f"\nSchemathesis {report['schemathesis_version']}: {operations['tested']} of {api_operations} /api/v1 "
        f"operations, {cases['generated']} test cases, {cases['with_failures']} with failures, "
        f"{len(report['errors'])} errors, seed {report['seed']}, {report['running_time']:.0f} s"
    )
    assert operations["tested"] == api_operations, output[-6000:]
    assert report["failures"] == [] and report["errors"] == [], output[-12000:]
    assert completed.returncode == 0, output[-6000:]
    assert "unhandled error" not in server.log_path.read_text(errors="replace")
