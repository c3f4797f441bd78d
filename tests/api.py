"""Small helpers that drive the JSON API the way a client would."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import DEFAULT_PASSWORD

_counter = itertools.count(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Account:
    """Someone signed in to the API."""

    def __init__(self, user_id: int, email: str, token: str) -> None:
        self.id = user_id
        self.email = email
        self.token = token

    @property
    def bearer(self) -> dict[str, str]:
        return bearer(self.token)


async def register(client: Any, name: str = "", email: str = "", timezone: str = "UTC") -> tuple[dict[str, Any], str]:
    n = next(_counter)
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": email or f"user{n}@example.com",
            "password": DEFAULT_PASSWORD,
            "name": name or f"User {n}",
            "timezone": timezone,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user"], body["token"]


def event_payload(**overrides: Any) -> dict[str, Any]:
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    payload = {
        "title": "Test Concert",
        "description": "Loud and late.",
        "venue": "Main Hall",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "timezone": "Europe/Berlin",
        "capacity": 10,
        "price_cents": 2000,
        "currency": "EUR",
    }
    payload.update(overrides)
    return payload


async def create_event(client: Any, token: str, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/events", json=event_payload(**overrides), headers=bearer(token))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def book(client: Any, token: str, event_id: int, seats: int = 1, **extra: Any) -> Any:
    return await client.post(
        f"/api/v1/events/{event_id}/bookings", json={"seats": seats, **extra}, headers=bearer(token)
    )


async def pay(client: Any, token: str, booking_id: int, card: str = "4242 4242 4242 4242") -> Any:
    return await client.post(f"/api/v1/bookings/{booking_id}/pay", json={"card_number": card}, headers=bearer(token))


async def eventually(check: Any, within: float = 10.0, interval: float = 0.05) -> Any:
    """Polls an async check until it returns something truthy: jobs run in the background."""
    import asyncio
    import time

    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s: last result {result!r}")
        await asyncio.sleep(interval)


async def inbox(client: Any, token: str | None = None, expect: int = 1, query: str = "") -> dict[str, Any]:
    """The caller's notifications once at least `expect` of them have arrived."""
    headers = bearer(token) if token else {}

    async def fetch() -> dict[str, Any] | None:
        body = (await client.get(f"/api/v1/notifications?{query}", headers=headers)).json()
        return body if len(body["items"]) >= expect else None

    return await eventually(fetch)  # type: ignore[no-any-return]


async def settled_tick(maker: Any, now: Any) -> Any:
    """A scheduler tick run by the test itself, returned once its hand-overs to the queue are
    done: they run as tasks on the test's event loop, which a request through the in-process
    test client blocks, so one left half-way would hold SQLite's write lock against that request."""
    from jobs.scheduler import tick
    from webapp.outbox.services import hand_overs_finished

    result = await tick(maker, now=now)
    await hand_overs_finished()
    return result
