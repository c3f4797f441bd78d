"""Route guards are coroutine functions: Litestar runs a plain-function guard in a worker thread,
a thread hop on every request for what is an attribute check (seen in the request profile of
bench.run)."""

from __future__ import annotations

import inspect

import pytest

from webapp.http import require_admin, require_user
from webapp.web.stream_access import require_stream_user


@pytest.mark.parametrize("guard", [require_user, require_admin, require_stream_user])
def test_guard_is_a_coroutine_function(guard: object) -> None:
    assert inspect.iscoroutinefunction(guard)
