"""Fixtures of the tests that run actors themselves, in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobs import runtime
from webapp.db import create_sessionmaker


@pytest.fixture
async def jobs_runtime(settings: Any) -> AsyncIterator[None]:
    """Actors run here use the test's settings (and dispose of their engine afterwards)."""
    runtime.configure(settings)
    yield
    await runtime.dispose()


@pytest.fixture
def maker(engine: Any) -> Any:
    return create_sessionmaker(engine)
