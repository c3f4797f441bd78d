"""Web and jobs processes collect garbage as rarely (webapp.collector)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from jobs.broker import CollectLessOften, _middleware
from webapp.collector import THRESHOLDS
from webapp.settings import get_settings


@pytest.fixture
def default_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_a_jobs_worker_process_collects_less_often(default_thresholds: None, settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert any(isinstance(middleware, CollectLessOften) for middleware in _middleware())

    CollectLessOften().after_process_boot(broker=None)  # type: ignore[arg-type]

    assert gc.get_threshold() == THRESHOLDS


def test_an_embedded_worker_leaves_its_web_process_setting_alone(
    default_thresholds: None, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.delenv("REDIS_URL", raising=False)

    CollectLessOften().after_process_boot(broker=None)  # type: ignore[arg-type]

    assert gc.get_threshold() == (700, 10, 10)
