"""Liveness and readiness: /health/live answers while the process does; /health/ready only when
the database (and Redis, when configured) answer, naming the part that does not."""

from __future__ import annotations

import dataclasses
import time

from litestar.testing import AsyncTestClient

from tests.services import REDIS_URL
from tidings.app import create_app
from webapp.settings import Settings


async def get(settings: Settings, path: str):  # type: ignore[no-untyped-def]
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        return await client.get(path)


async def test_live_and_ready_answer_200_when_the_database_answers(settings: Settings) -> None:
    for path in ("/health/live", "/healthz", "/health/ready"):
        response = await get(settings, path)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["status"] == "ok"
    ready = await get(settings, "/health/ready")
    assert ready.json()["checks"] == {"database": "ok"}


async def test_ready_is_503_naming_the_database_when_it_is_unreachable(settings: Settings, refused_port: int) -> None:
    down = dataclasses.replace(
        settings, database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{refused_port}/tidings", redis_url=None
    )
    started = time.monotonic()
    ready = await get(down, "/health/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["error"]["code"] == "not_ready"
    assert "database" in body["error"]["message"]
    assert body["checks"]["database"] != "ok"
    assert time.monotonic() - started < 10
    live = await get(down, "/health/live")
    assert live.status_code == 200  # the process itself still answers


async def test_ready_is_503_naming_redis_when_its_port_refuses(settings: Settings, refused_port: int) -> None:
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{refused_port}/0", redis_timeout_seconds=1.0)
    ready = await get(down, "/health/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] != "ok"
    assert "redis" in body["error"]["message"]


async def test_ready_checks_redis_when_configured_and_it_answers(settings: Settings) -> None:
    up = dataclasses.replace(settings, redis_url=REDIS_URL)
    ready = await get(up, "/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_the_image_and_compose_probe_readiness() -> None:
    import yaml

    from webapp.settings import PROJECT_ROOT

    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    check = dockerfile.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert "/health/ready" in check
    services = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())["services"]
    for name in ("web1", "web2"):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "/health/ready" in test, name


async def test_live_reads_no_session_and_sets_no_cookie(settings: Settings, refused_port: int) -> None:
    """A probe is not a visit: a browser's cookies on it are not looked at, so a refresh cookie
    neither rotates a session nor needs the database, and no CSRF cookie is handed out."""
    down = dataclasses.replace(
        settings, database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{refused_port}/tidings", redis_url=None
    )
    for app_settings in (settings, down):
        async with AsyncTestClient(create_app(app_settings), base_url="http://127.0.0.1:8000") as client:
            client.cookies.set("tidings_refresh", "not-a-refresh-token")
            for path in ("/health/live", "/healthz"):
                live = await client.get(path)
                assert live.status_code == 200, (path, live.text)
                assert "set-cookie" not in live.headers, (path, live.headers)
                assert live.headers["x-request-id"]
                assert live.headers["x-content-type-options"] == "nosniff"  # still an answer of the app's
