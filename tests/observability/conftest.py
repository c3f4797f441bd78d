"""Fixtures of the observability tests: a server of their own, and readings of its /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from argon2 import PasswordHasher
from prometheus_client.parser import text_string_to_metric_families

import webapp.auth.services as auth_services
from tests.services import LiveServer


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_services, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="module")
def metrics_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of its own, so the gauges and counters it shows move only with this module's tests."""
    from tests.reliability.conftest import server_env

    server = LiveServer(server_env(database_url), tmp_path_factory.mktemp("metrics") / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def metrics_http(metrics_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=metrics_server.url, timeout=30) as client:
        yield client


class Scrape:
    """One reading of /metrics: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def since(self, before: Scrape, name: str, **labels: str) -> float:
        """How much a sample moved since an earlier reading."""
        return self.value(name, **labels) - before.value(name, **labels)


async def scrape(http: httpx.AsyncClient) -> Scrape:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)
