"""Fixtures of the tests that run actors themselves, in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import jobs.dispatch
from jobs import runtime
from webapp.db import create_sessionmaker
from webapp.outbox.services import set_dispatcher


@pytest.fixture
async def jobs_runtime(settings: Any) -> AsyncIterator[None]:
    """Actors run here use the test's settings (and dispose of their engine afterwards)."""
    runtime.configure(settings)
    yield
    await runtime.dispose()


@pytest.fixture
def maker(engine: Any) -> Any:
    return create_sessionmaker(engine)


@pytest.fixture
def sent() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every message the outbox hands over, in order, as (actor name, kwargs); none runs."""
    captured: list[tuple[str, dict[str, Any]]] = []
    set_dispatcher(lambda name, kwargs: captured.append((name, kwargs)))
    yield captured
    set_dispatcher(jobs.dispatch.send_by_name)
