from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.api import bearer, register
from tests.integration.rows import insert_booking, insert_event
from webapp.reviews.models import Review

ENDED = {"starts_in": -timedelta(hours=5), "duration": timedelta(hours=2)}


async def review(client, token: str, event_id: int, rating, comment: str = "Great night."):
    return await client.post(
        f"/api/v1/events/{event_id}/reviews", json={"rating": rating, "comment": comment}, headers=bearer(token)
    )


async def review_count(session) -> int:
    count = await session.scalar(select(func.count()).select_from(Review))
    await session.commit()  # end the read transaction (SQLite transactions hold the write lock)
    return int(count or 0)


async def test_an_attendee_with_a_confirmed_seat_reviews_an_ended_event(client, session):
    organizer, _ = await register(client)
    attendee, token = await register(client, name="Rita")
    event = await insert_event(session, organizer["id"], **ENDED)
    await insert_booking(session, event, attendee["id"])
    response = await review(client, token, event.id, 4, "  Loved the encore.  ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body["id"], int)
    assert body["event_id"] == event.id
    assert body["user"] == {"id": attendee["id"], "name": "Rita"}
    assert body["rating"] == 4
    assert body["comment"] == "Loved the encore."
    assert await review_count(session) == 1


async def test_reviewing_before_the_event_has_ended_is_409(client, session):
    organizer, _ = await register(client)
    attendee, token = await register(client)
    running = await insert_event(session, organizer["id"], starts_in=-timedelta(hours=1), duration=timedelta(hours=3))
    await insert_booking(session, running, attendee["id"])
    upcoming = await insert_event(session, organizer["id"], starts_in=timedelta(days=2))
    await insert_booking(session, upcoming, attendee["id"])
    for event in (running, upcoming):
        response = await review(client, token, event.id, 5)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "event_not_ended"
    assert await review_count(session) == 0


async def test_reviewing_without_a_confirmed_booking_is_403(client, session):
    organizer, _ = await register(client)
    pending_booker, pending_token = await register(client)
    cancelled_booker, cancelled_token = await register(client)
    _, stranger_token = await register(client)
    event = await insert_event(session, organizer["id"], **ENDED)
    await insert_booking(session, event, pending_booker["id"], status="pending")
    await insert_booking(session, event, cancelled_booker["id"], status="cancelled")
    for token in (stranger_token, pending_token, cancelled_token):
        response = await review(client, token, event.id, 3)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "not_attendee"
    assert await review_count(session) == 0


async def test_a_confirmed_booking_for_another_event_does_not_allow_a_review(client, session):
    organizer, _ = await register(client)
    attendee, token = await register(client)
    reviewed = await insert_event(session, organizer["id"], **ENDED)
    other = await insert_event(session, organizer["id"], **ENDED)
    await insert_booking(session, other, attendee["id"])
    response = await review(client, token, reviewed.id, 5)
    assert response.status_code == 403, response.text
    assert await review_count(session) == 0


@pytest.mark.parametrize("rating", [0, 6, -1])
async def test_a_rating_outside_1_to_5_is_422(client, session, rating):
    organizer, _ = await register(client)
    attendee, token = await register(client)
    event = await insert_event(session, organizer["id"], **ENDED)
    await insert_booking(session, event, attendee["id"])
    response = await review(client, token, event.id, rating)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "rating" in error["fields"]
    assert await review_count(session) == 0


async def test_a_non_integer_rating_is_422(client, session):
    organizer, _ = await register(client)
    attendee, token = await register(client)
    event = await insert_event(session, organizer["id"], **ENDED)
    await insert_booking(session, event, attendee["id"])
    response = await review(client, token, event.id, "five")
    assert response.status_code == 422, response.text
    assert await review_count(session) == 0


async def test_a_second_review_by_the_same_user_is_409(client, session):
    organizer, _ = await register(client)
    attendee, token = await register(client)
    event = await insert_event(session, organizer["id"], **ENDED)
    await insert_booking(session, event, attendee["id"])
    assert (await review(client, token, event.id, 5)).status_code == 201
    again = await review(client, token, event.id, 1, "Changed my mind.")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "already_reviewed"
    ratings = list(await session.scalars(select(Review.rating)))
    await session.commit()
    assert ratings == [5]


async def test_each_attendee_reviews_once_independently(client, session):
    organizer, _ = await register(client)
    first, first_token = await register(client)
    second, second_token = await register(client)
    event = await insert_event(session, organizer["id"], **ENDED)
    await insert_booking(session, event, first["id"])
    await insert_booking(session, event, second["id"])
    assert (await review(client, first_token, event.id, 5)).status_code == 201
    assert (await review(client, second_token, event.id, 2)).status_code == 201
    assert await review_count(session) == 2


async def test_reviewing_an_unknown_event_is_404_and_anonymously_is_401(client, session):
    organizer, _ = await register(client)
    _, token = await register(client)
    event = await insert_event(session, organizer["id"], **ENDED)
    missing = await review(client, token, 999999, 5)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    anonymous = await client.post(f"/api/v1/events/{event.id}/reviews", json={"rating": 5})
    assert anonymous.status_code == 401
    assert await review_count(session) == 0
