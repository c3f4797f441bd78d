"""Fixtures of the observability tests: ports that refuse every connection, standing in for a
database or a Redis that is down."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

import webapp.auth.services as auth_services


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but never listening: every connection to it is refused at once, and nothing
    else can start answering there while the test runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_services, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
