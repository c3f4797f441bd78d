from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.api import bearer, book, create_event, event_payload, register
from tests.integration.rows import insert_event


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


async def get_event(client, event_id: int) -> dict:
    response = await client.get(f"/api/v1/events/{event_id}")
    assert response.status_code == 200, response.text
    return response.json()


# --- happy paths -------------------------------------------------------------------------------


async def test_create_returns_201_with_id_version_1_and_scheduled_status(client):
    organizer, token = await register(client, name="Olga")
    payload = event_payload(title="  Jazz Night  ", currency="eur", capacity=12, price_cents=1500)
    response = await client.post("/api/v1/events", json=payload, headers=bearer(token))
    assert response.status_code == 201, response.text
    event = response.json()
    assert isinstance(event["id"], int)
    assert event["version"] == 1
    assert event["status"] == "scheduled"
    assert event["title"] == "Jazz Night"
    assert event["currency"] == "EUR"
    assert event["capacity"] == 12
    assert event["seats_left"] == 12
    assert event["price_cents"] == 1500
    assert event["organizer"] == {"id": organizer["id"], "name": "Olga"}
    assert datetime.fromisoformat(event["starts_at"]) == datetime.fromisoformat(payload["starts_at"])
    assert datetime.fromisoformat(event["ends_at"]) == datetime.fromisoformat(payload["ends_at"])


async def test_created_event_can_be_fetched_by_id_without_logging_in(client):
    _, token = await register(client)
    created = await create_event(client, token, title="Fetch Me")
    fetched = await get_event(client, created["id"])
    assert fetched == created


async def test_list_shows_upcoming_scheduled_events_in_start_order_but_not_cancelled_ones(client):
    _, token = await register(client)
    now = datetime.now(UTC).replace(microsecond=0)
    later = await create_event(
        client,
        token,
        title="Later",
        starts_at=(now + timedelta(days=9)).isoformat(),
        ends_at=(now + timedelta(days=9, hours=1)).isoformat(),
    )
    sooner = await create_event(
        client,
        token,
        title="Sooner",
        starts_at=(now + timedelta(days=2)).isoformat(),
        ends_at=(now + timedelta(days=2, hours=1)).isoformat(),
    )
    cancelled = await create_event(client, token, title="Called off")
    assert (await client.post(f"/api/v1/events/{cancelled['id']}/cancel", headers=bearer(token))).status_code == 200

    response = await client.get("/api/v1/events")
    assert response.status_code == 200
    assert [e["id"] for e in response.json()["items"]] == [sooner["id"], later["id"]]


async def test_create_and_patch_answer_with_the_same_utc_times_that_get_returns(client):
    """Times are stored in UTC; every answer about the same event must give the same times."""
    _, token = await register(client)
    berlin_summer = timezone(timedelta(hours=2))
    starts = datetime.now(berlin_summer).replace(microsecond=0) + timedelta(days=5)
    created = await create_event(
        client, token, starts_at=starts.isoformat(), ends_at=(starts + timedelta(hours=2)).isoformat()
    )
    fetched = await get_event(client, created["id"])
    assert datetime.fromisoformat(fetched["starts_at"]).utcoffset() == timedelta(0)
    assert (created["starts_at"], created["ends_at"]) == (fetched["starts_at"], fetched["ends_at"])
    patched = await client.patch(
        f"/api/v1/events/{created['id']}",
        json={"ends_at": (starts + timedelta(hours=3)).isoformat()},
        headers=bearer(token),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["ends_at"] == (await get_event(client, created["id"]))["ends_at"]


async def test_organizer_patch_changes_fields_and_increments_version(client):
    _, token = await register(client)
    event = await create_event(client, token)
    response = await client.patch(
        f"/api/v1/events/{event['id']}", json={"title": "Renamed", "capacity": 30}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["title"] == "Renamed"
    assert patched["capacity"] == 30
    assert patched["venue"] == event["venue"]
    assert patched["version"] == 2
    second = await client.patch(f"/api/v1/events/{event['id']}", json={"venue": "Annex"}, headers=bearer(token))
    assert second.status_code == 200
    assert second.json()["version"] == 3
    stored = await get_event(client, event["id"])
    assert (stored["title"], stored["capacity"], stored["venue"], stored["version"]) == ("Renamed", 30, "Annex", 3)


async def test_empty_patch_and_patch_with_unchanged_values_keep_the_version(client):
    _, token = await register(client)
    event = await create_event(client, token)
    empty = await client.patch(f"/api/v1/events/{event['id']}", json={}, headers=bearer(token))
    assert empty.status_code == 200, empty.text
    assert empty.json()["version"] == 1
    same = await client.patch(
        f"/api/v1/events/{event['id']}",
        json={"title": event["title"], "capacity": event["capacity"]},
        headers=bearer(token),
    )
    assert same.status_code == 200, same.text
    assert same.json()["version"] == 1
    assert (await get_event(client, event["id"]))["version"] == 1


async def test_cancel_sets_status_cancelled_and_bumps_version(client):
    _, token = await register(client)
    event = await create_event(client, token)
    response = await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["version"] == 2
    assert (await get_event(client, event["id"]))["status"] == "cancelled"


async def test_cancelling_a_cancelled_event_is_409(client):
    _, token = await register(client)
    event = await create_event(client, token)
    assert (await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(token))).status_code == 200
    again = await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(token))
    assert_error(again, 409, "event_cancelled")
    assert (await get_event(client, event["id"]))["version"] == 2


async def test_editing_a_cancelled_event_is_409_and_changes_nothing(client):
    _, token = await register(client)
    event = await create_event(client, token)
    assert (await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(token))).status_code == 200
    response = await client.patch(f"/api/v1/events/{event['id']}", json={"title": "Back on"}, headers=bearer(token))
    assert_error(response, 409, "event_cancelled")
    stored = await get_event(client, event["id"])
    assert stored["title"] == event["title"]
    assert stored["status"] == "cancelled"


async def test_editing_an_event_that_has_started_is_409(client, session):
    organizer, token = await register(client)
    started = await insert_event(session, organizer["id"], starts_in=-timedelta(minutes=30))
    response = await client.patch(f"/api/v1/events/{started.id}", json={"title": "Too late"}, headers=bearer(token))
    assert_error(response, 409, "event_started")
    assert (await get_event(client, started.id))["title"] == started.title


# --- malformed requests: 400 (not JSON) and 422 (JSON of the wrong shape) ---------------------------


async def test_create_with_malformed_json_is_400(client):
    _, token = await register(client)
    response = await client.post(
        "/api/v1/events",
        content=b'{"title": "oops",',
        headers={**bearer(token), "content-type": "application/json"},
    )
    assert_error(response, 400)


async def test_patch_with_malformed_json_is_400(client):
    _, token = await register(client)
    event = await create_event(client, token)
    response = await client.patch(
        f"/api/v1/events/{event['id']}", content=b"{nope", headers={**bearer(token), "content-type": "application/json"}
    )
    assert_error(response, 400)
    assert (await get_event(client, event["id"]))["version"] == 1


@pytest.mark.parametrize("missing", ["title", "venue", "starts_at", "ends_at", "timezone", "capacity", "price_cents"])
async def test_create_with_a_required_field_missing_is_422(client, missing):
    _, token = await register(client)
    payload = event_payload()
    del payload[missing]
    response = await client.post("/api/v1/events", json=payload, headers=bearer(token))
    error = assert_error(response, 422, "validation_error")
    assert error["fields"][missing] == "is required"
    assert (await client.get("/api/v1/events")).json()["items"] == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"capacity": "ten"},
        {"price_cents": 12.5},
        {"title": 42},
        {"starts_at": "next tuesday"},
        {"timezone": ["Europe/Berlin"]},
        {"capacity": None},
    ],
    ids=["capacity-string", "price-float", "title-number", "starts-at-not-a-date", "timezone-list", "capacity-null"],
)
async def test_create_with_wrong_types_is_422(client, overrides):
    _, token = await register(client)
    response = await client.post("/api/v1/events", json=event_payload(**overrides), headers=bearer(token))
    assert_error(response, 422, "validation_error")
    assert (await client.get("/api/v1/events")).json()["items"] == []


async def test_patch_with_wrong_type_is_422(client):
    _, token = await register(client)
    event = await create_event(client, token)
    response = await client.patch(f"/api/v1/events/{event['id']}", json={"capacity": "many"}, headers=bearer(token))
    assert_error(response, 422, "validation_error")
    assert (await get_event(client, event["id"]))["capacity"] == event["capacity"]


# --- invalid values: 422 -----------------------------------------------------------------------


def _future(days: float = 7) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {
                "starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            },
            "starts_at",
        ),
        ({"starts_at": _future(7).isoformat(), "ends_at": _future(6).isoformat()}, "ends_at"),
        ({"starts_at": _future(7).isoformat(), "ends_at": _future(7).isoformat()}, "ends_at"),
        ({"starts_at": _future(7).replace(tzinfo=None).isoformat()}, "starts_at"),
        ({"ends_at": _future(7.1).replace(tzinfo=None).isoformat()}, "ends_at"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": -3}, "capacity"),
        ({"price_cents": -1}, "price_cents"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "E1R"}, "currency"),
        ({"title": "   "}, "title"),
        ({"venue": ""}, "venue"),
    ],
    ids=[
        "start-in-past",
        "ends-before-start",
        "ends-at-start",
        "start-without-utc-offset",
        "end-without-utc-offset",
        "unknown-timezone",
        "capacity-zero",
        "capacity-negative",
        "negative-price",
        "currency-four-letters",
        "currency-with-digit",
        "blank-title",
        "blank-venue",
    ],
)
async def test_create_with_invalid_value_is_422_naming_the_field(client, overrides, field):
    _, token = await register(client)
    response = await client.post("/api/v1/events", json=event_payload(**overrides), headers=bearer(token))
    error = assert_error(response, 422, "validation_error")
    assert field in error["fields"], error
    assert (await client.get("/api/v1/events")).json()["items"] == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()}, "starts_at"),
        ({"ends_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "ends_at"),
        ({"timezone": "Nowhere/Special"}, "timezone"),
        ({"capacity": 0}, "capacity"),
        ({"price_cents": -500}, "price_cents"),
        ({"currency": "12"}, "currency"),
        ({"starts_at": _future(6).replace(tzinfo=None).isoformat()}, "starts_at"),
    ],
    ids=[
        "start-in-past",
        "ends-before-start",
        "unknown-timezone",
        "capacity-zero",
        "negative-price",
        "bad-currency",
        "start-without-utc-offset",
    ],
)
async def test_patch_with_invalid_value_is_422_and_leaves_the_event_unchanged(client, changes, field):
    _, token = await register(client)
    event = await create_event(client, token)
    response = await client.patch(f"/api/v1/events/{event['id']}", json=changes, headers=bearer(token))
    error = assert_error(response, 422, "validation_error")
    assert field in error["fields"], error
    assert await get_event(client, event["id"]) == event


async def test_capacity_cannot_be_lowered_below_seats_already_booked(client):
    _, organizer = await register(client)
    _, guest = await register(client)
    event = await create_event(client, organizer, capacity=10)
    assert (await book(client, guest, event["id"], seats=4)).status_code == 201
    too_low = await client.patch(f"/api/v1/events/{event['id']}", json={"capacity": 3}, headers=bearer(organizer))
    error = assert_error(too_low, 422, "validation_error")
    assert "capacity" in error["fields"]
    stored = await get_event(client, event["id"])
    assert (stored["capacity"], stored["seats_left"], stored["version"]) == (10, 6, 1)
    exact = await client.patch(f"/api/v1/events/{event['id']}", json={"capacity": 4}, headers=bearer(organizer))
    assert exact.status_code == 200, exact.text
    assert (exact.json()["capacity"], exact.json()["seats_left"]) == (4, 0)


# --- who may do what ---------------------------------------------------------------------------


async def test_patch_by_another_user_is_404_and_the_event_is_unchanged(client):
    _, owner = await register(client)
    _, intruder = await register(client)
    event = await create_event(client, owner)
    response = await client.patch(f"/api/v1/events/{event['id']}", json={"title": "Hijacked"}, headers=bearer(intruder))
    assert_error(response, 404, "not_found")
    assert await get_event(client, event["id"]) == event


async def test_cancel_by_another_user_is_404_and_the_event_stays_scheduled(client):
    _, owner = await register(client)
    _, intruder = await register(client)
    event = await create_event(client, owner)
    response = await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(intruder))
    assert_error(response, 404, "not_found")
    assert await get_event(client, event["id"]) == event


async def test_unknown_event_id_is_404_for_get_patch_and_cancel(client):
    _, token = await register(client)
    assert_error(await client.get("/api/v1/events/999999"), 404, "not_found")
    assert_error(
        await client.patch("/api/v1/events/999999", json={"title": "x"}, headers=bearer(token)), 404, "not_found"
    )
    assert_error(await client.post("/api/v1/events/999999/cancel", headers=bearer(token)), 404, "not_found")


async def test_unauthenticated_create_patch_and_cancel_are_401(client):
    _, token = await register(client)
    event = await create_event(client, token)
    assert_error(await client.post("/api/v1/events", json=event_payload()), 401, "unauthorized")
    assert_error(
        await client.post("/api/v1/events", json=event_payload(), headers=bearer("not-a-token")), 401, "unauthorized"
    )
    assert_error(await client.patch(f"/api/v1/events/{event['id']}", json={"title": "x"}), 401, "unauthorized")
    assert_error(await client.post(f"/api/v1/events/{event['id']}/cancel"), 401, "unauthorized")
    assert [e["id"] for e in (await client.get("/api/v1/events")).json()["items"]] == [event["id"]]
    assert await get_event(client, event["id"]) == event
