"""Creating a booking is idempotent: an API retry with the same Idempotency-Key, or a double submit
of the booking form, books once and answers with the same booking."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from tests.api import bearer, create_event, register
from tests.integration.pages import register_in_browser
from webapp.bookings.models import Booking, BookingRequestKey


async def post_booking(client, token: str, event_id: int, body: dict, key: str | None = None):
    headers = bearer(token) | ({"Idempotency-Key": key} if key is not None else {})
    return await client.post(f"/api/v1/events/{event_id}/bookings", json=body, headers=headers)


async def bookings_of(session, event_id: int) -> int:
    count = await session.scalar(select(func.count()).select_from(Booking).where(Booking.event_id == event_id))
    await session.commit()  # end the read: on SQLite it holds the write lock
    return int(count or 0)


async def seats_left(client, event_id: int) -> int:
    return int((await client.get(f"/api/v1/events/{event_id}")).json()["seats_left"])


async def test_an_api_retry_with_the_same_key_books_once_and_answers_the_same(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=10)
    _, token = await register(client)
    first = await post_booking(client, token, event["id"], {"seats": 2}, key="retry-1")
    assert first.status_code == 201, first.text
    retry = await post_booking(client, token, event["id"], {"seats": 2}, key="retry-1")
    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert await bookings_of(session, event["id"]) == 1
    assert await seats_left(client, event["id"]) == 8


async def test_the_same_key_with_a_different_body_is_422_and_changes_nothing(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=10)
    _, token = await register(client)
    assert (await post_booking(client, token, event["id"], {"seats": 2}, key="k")).status_code == 201
    other = await post_booking(client, token, event["id"], {"seats": 3}, key="k")
    assert other.status_code == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await bookings_of(session, event["id"]) == 1
    assert await seats_left(client, event["id"]) == 8


async def test_keys_are_per_user_bounded_and_expire_after_a_day(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=10)
    _, alice = await register(client)
    _, bob = await register(client)
    mine = await post_booking(client, alice, event["id"], {"seats": 1}, key="same")
    theirs = await post_booking(client, bob, event["id"], {"seats": 1}, key="same")
    assert mine.status_code == theirs.status_code == 201 and mine.json()["id"] != theirs.json()["id"]
    for bad in ("", "x" * 201):
        refused = await post_booking(client, alice, event["id"], {"seats": 1}, key=bad)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "validation_error"
    assert (await post_booking(client, alice, event["id"], {"seats": 1}, key="x" * 200)).status_code == 201
    assert await bookings_of(session, event["id"]) == 3

    for row in await session.scalars(select(BookingRequestKey)):
        row.created_at -= timedelta(hours=25)
    await session.commit()
    again = await post_booking(client, alice, event["id"], {"seats": 1}, key="same")
    assert again.status_code == 201 and again.json()["id"] != mine.json()["id"]  # an expired key books anew
    assert "idempotent-replayed" not in again.headers


async def test_a_refused_booking_does_not_use_up_its_key(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=2)
    _, token = await register(client)
    full = await post_booking(client, token, event["id"], {"seats": 3}, key="try")
    assert full.status_code == 409 and full.json()["error"]["code"] == "event_full"
    assert (await post_booking(client, token, event["id"], {"seats": 3}, key="try")).status_code == 409
    assert await bookings_of(session, event["id"]) == 0


async def test_without_a_key_every_request_books_as_before(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=10)
    _, token = await register(client)
    first = await post_booking(client, token, event["id"], {"seats": 1})
    second = await post_booking(client, token, event["id"], {"seats": 1})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert await bookings_of(session, event["id"]) == 2


async def test_a_double_submitted_booking_form_books_once_and_lands_on_the_same_booking(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=10)
    await register_in_browser(client, "double@example.com")
    page = (await client.get(f"/events/{event['id']}")).text
    tokens = re.findall(r'name="booking_token" value="([^"]+)"', page)
    assert tokens and len(set(tokens)) == len(tokens)  # one per form, fresh on every rendering
    assert (
        re.findall(r'name="booking_token" value="([^"]+)"', (await client.get(f"/events/{event['id']}")).text)[0]
        not in tokens
    )
    form = {"seats": "2", "booking_token": tokens[0], "_csrf_token": client.cookies["tidings_csrf"]}
    first = await client.post(f"/events/{event['id']}/book", data=form)
    second = await client.post(f"/events/{event['id']}/book", data=form)  # a double click, or a retry
    assert first.status_code == second.status_code == 302
    assert first.headers["location"] == second.headers["location"]
    assert first.headers["location"].startswith("/bookings/") and first.headers["location"].endswith("/pay")
    assert await bookings_of(session, event["id"]) == 1
    assert await seats_left(client, event["id"]) == 8
    # The same form sent with other values is refused on the page, with a fresh form to book again.
    changed = await client.post(f"/events/{event['id']}/book", data={**form, "seats": "3"})
    assert changed.status_code == 422 and "already used" in changed.text
    assert await bookings_of(session, event["id"]) == 1
