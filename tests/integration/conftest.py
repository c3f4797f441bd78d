"""Integration-test speed-up: registrations hash passwords with cheap argon2 parameters.

Password hashing strength is not what these tests prove, and the default parameters cost ~0.3 s
per registration. Hashes stay real argon2 hashes, so logging in still verifies them.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

import webapp.auth.services as auth_services


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_services, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
