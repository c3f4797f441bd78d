from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.api import bearer, book, create_event, pay, register
from tests.integration.rows import insert_event
from webapp.bookings.payment_models import Payment

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
NO_FUNDS_CARD = "4000 0000 0000 9995"


async def my_bookings(client, token: str) -> dict[int, dict]:
    response = await client.get("/api/v1/bookings", headers=bearer(token))
    assert response.status_code == 200, response.text
    return {b["id"]: b for b in response.json()["items"]}


async def seats_left(client, event_id: int) -> int:
    response = await client.get(f"/api/v1/events/{event_id}")
    assert response.status_code == 200, response.text
    return response.json()["seats_left"]  # type: ignore[no-any-return]


async def payments_for(session, booking_id: int) -> list[Payment]:
    statement = (
        select(Payment)
        .where(Payment.booking_id == booking_id)
        .order_by(Payment.id)
        .execution_options(populate_existing=True)
    )
    rows = list(await session.scalars(statement))
    # End the read transaction: on SQLite every transaction holds the write lock (BEGIN IMMEDIATE).
    await session.commit()
    return rows


async def booked(client, token: str, event_id: int, seats: int = 1, **extra) -> dict:
    response = await book(client, token, event_id, seats, **extra)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# --- booking -----------------------------------------------------------------------------------


async def test_booking_is_201_pending_with_amount_seats_times_price_and_holds_the_seats(client):
    _, organizer = await register(client)
    guest, token = await register(client)
    event = await create_event(client, organizer, capacity=10, price_cents=2500, currency="EUR")
    response = await book(client, token, event["id"], seats=3)
    assert response.status_code == 201, response.text
    booking = response.json()
    assert booking["status"] == "pending"
    assert booking["seats"] == 3
    assert booking["amount_cents"] == 7500
    assert booking["currency"] == "EUR"
    assert booking["event_id"] == event["id"]
    assert booking["attendee_ids"] == [guest["id"]]
    assert booking["failure_reason"] is None
    assert await seats_left(client, event["id"]) == 7


async def test_booking_a_free_event_is_confirmed_at_once(client, session):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer, price_cents=0)
    booking = await booked(client, token, event["id"], seats=2)
    assert booking["status"] == "confirmed"
    assert booking["amount_cents"] == 0
    assert booking["confirmed_at"] is not None
    assert (await my_bookings(client, token))[booking["id"]]["status"] == "confirmed"
    assert await payments_for(session, booking["id"]) == []


async def test_booking_more_seats_than_are_left_is_409_event_full_and_holds_nothing(client):
    _, organizer = await register(client)
    _, first = await register(client)
    _, second = await register(client)
    event = await create_event(client, organizer, capacity=3)
    await booked(client, first, event["id"], seats=2)
    response = await book(client, second, event["id"], seats=2)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "event_full"
    assert await seats_left(client, event["id"]) == 1
    assert await my_bookings(client, second) == {}
    assert (await book(client, second, event["id"], seats=1)).status_code == 201
    assert await seats_left(client, event["id"]) == 0


@pytest.mark.parametrize("seats", [0, -1, 21])
async def test_booking_outside_1_to_20_seats_is_422(client, seats):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer, capacity=100)
    response = await book(client, token, event["id"], seats=seats)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "seats" in error["fields"]
    assert await seats_left(client, event["id"]) == 100
    assert await my_bookings(client, token) == {}


async def test_booking_with_a_non_integer_seat_count_is_422(client):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer)
    response = await book(client, token, event["id"], seats="two")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert await seats_left(client, event["id"]) == event["capacity"]


async def test_booking_a_cancelled_event_is_409(client):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer)
    assert (await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(organizer))).status_code == 200
    response = await book(client, token, event["id"])
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "event_cancelled"
    assert await my_bookings(client, token) == {}


async def test_booking_an_event_that_already_started_is_409(client, session):
    organizer, _ = await register(client)
    _, token = await register(client)
    past = await insert_event(session, organizer["id"], starts_in=-timedelta(hours=1))
    response = await book(client, token, past.id)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "event_started"
    assert await my_bookings(client, token) == {}


async def test_booking_an_unknown_event_is_404_and_anonymous_booking_is_401(client):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer)
    missing = await book(client, token, 999999)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    anonymous = await client.post(f"/api/v1/events/{event['id']}/bookings", json={"seats": 1})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert await seats_left(client, event["id"]) == event["capacity"]


# --- paying ------------------------------------------------------------------------------------


async def test_paying_with_the_success_card_confirms_the_booking_and_records_the_payment(client, session):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer, price_cents=1250, currency="USD")
    booking = await booked(client, token, event["id"], seats=2)
    response = await pay(client, token, booking["id"], GOOD_CARD)
    assert response.status_code == 200, response.text
    paid = response.json()
    assert paid["status"] == "confirmed"
    assert paid["confirmed_at"] is not None
    assert paid["failure_reason"] is None
    assert (await my_bookings(client, token))[booking["id"]]["status"] == "confirmed"
    [payment] = await payments_for(session, booking["id"])
    assert payment.status == "succeeded"
    assert (payment.amount_cents, payment.currency, payment.card_last4) == (2500, "USD", "4242")
    assert payment.provider_reference
    assert payment.failure_code is None


@pytest.mark.parametrize(("card", "code"), [(DECLINED_CARD, "card_declined"), (NO_FUNDS_CARD, "insufficient_funds")])
async def test_a_failed_payment_is_402_leaves_the_booking_pending_and_records_the_reason(client, session, card, code):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer, price_cents=2000)
    booking = await booked(client, token, event["id"])
    response = await pay(client, token, booking["id"], card)
    assert response.status_code == 402, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["booking"]["status"] == "pending"
    assert body["booking"]["failure_reason"] == body["error"]["message"]

    listed = (await my_bookings(client, token))[booking["id"]]
    assert listed["status"] == "pending"
    assert listed["failure_reason"] == body["error"]["message"]
    assert listed["confirmed_at"] is None
    assert await seats_left(client, event["id"]) == event["capacity"] - 1  # the seat is still held

    [payment] = await payments_for(session, booking["id"])
    assert payment.status == "failed"
    assert payment.failure_code == code
    assert payment.card_last4 == card[-4:]
    assert payment.provider_reference is None


async def test_after_a_decline_paying_with_a_good_card_confirms_and_clears_the_reason(client, session):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer)
    booking = await booked(client, token, event["id"])
    assert (await pay(client, token, booking["id"], DECLINED_CARD)).status_code == 402
    assert (await pay(client, token, booking["id"], NO_FUNDS_CARD)).status_code == 402
    ok = await pay(client, token, booking["id"], GOOD_CARD)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "confirmed"
    assert ok.json()["failure_reason"] is None
    attempts = await payments_for(session, booking["id"])
    assert [(p.status, p.failure_code) for p in attempts] == [
        ("failed", "card_declined"),
        ("failed", "insufficient_funds"),
        ("succeeded", None),
    ]


@pytest.mark.parametrize("card", ["1234", "4242 4242 4242 4241", "abcd efgh ijkl mnop", ""])
async def test_an_invalid_card_number_is_422_and_records_nothing(client, session, card):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer)
    booking = await booked(client, token, event["id"])
    response = await pay(client, token, booking["id"], card)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "card_number" in error["fields"]
    listed = (await my_bookings(client, token))[booking["id"]]
    assert (listed["status"], listed["failure_reason"]) == ("pending", None)
    assert await payments_for(session, booking["id"]) == []


async def test_paying_a_confirmed_booking_is_409_and_charges_nothing_more(client, session):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer)
    booking = await booked(client, token, event["id"])
    assert (await pay(client, token, booking["id"], GOOD_CARD)).status_code == 200
    again = await pay(client, token, booking["id"], GOOD_CARD)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "booking_not_pending"
    assert len(await payments_for(session, booking["id"])) == 1


async def test_paying_a_free_confirmed_booking_is_409(client, session):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer, price_cents=0)
    booking = await booked(client, token, event["id"])
    response = await pay(client, token, booking["id"], GOOD_CARD)
    assert response.status_code == 409, response.text
    assert await payments_for(session, booking["id"]) == []


async def test_paying_a_cancelled_booking_is_409(client, session):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer)
    booking = await booked(client, token, event["id"])
    assert (await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(token))).status_code == 200
    response = await pay(client, token, booking["id"], GOOD_CARD)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "booking_not_pending"
    assert await payments_for(session, booking["id"]) == []


async def test_paying_for_a_booking_of_a_cancelled_event_is_409_and_charges_nothing(client, session):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer)
    booking = await booked(client, token, event["id"])
    assert (await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(organizer))).status_code == 200
    response = await pay(client, token, booking["id"], GOOD_CARD)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "event_not_bookable"
    assert await payments_for(session, booking["id"]) == []


async def test_paying_another_users_booking_is_404_and_records_nothing(client, session):
    _, organizer = await register(client)
    _, owner = await register(client)
    _, stranger = await register(client)
    event = await create_event(client, organizer)
    booking = await booked(client, owner, event["id"])
    response = await pay(client, stranger, booking["id"], GOOD_CARD)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    # Not even the organizer may pay on the booker's behalf.
    assert (await pay(client, organizer, booking["id"], GOOD_CARD)).status_code == 404
    assert (await my_bookings(client, owner))[booking["id"]]["status"] == "pending"
    assert await payments_for(session, booking["id"]) == []
    assert (await pay(client, stranger, 999999, GOOD_CARD)).status_code == 404


async def test_every_payment_attempt_is_a_payment_row(client, session):
    _, organizer = await register(client)
    user, token = await register(client)
    event = await create_event(client, organizer, price_cents=300)
    first = await booked(client, token, event["id"], seats=1)
    second = await booked(client, token, event["id"], seats=4)
    await pay(client, token, first["id"], DECLINED_CARD)
    await pay(client, token, first["id"], "1234")  # not an attempt: rejected before the gateway
    await pay(client, token, first["id"], GOOD_CARD)
    await pay(client, token, second["id"], NO_FUNDS_CARD)
    rows = list(await session.scalars(select(Payment).order_by(Payment.id)))
    await session.commit()
    assert [(p.booking_id, p.user_id, p.amount_cents, p.status) for p in rows] == [
        (first["id"], user["id"], 300, "failed"),
        (first["id"], user["id"], 300, "succeeded"),
        (second["id"], user["id"], 1200, "failed"),
    ]
    assert await session.scalar(select(func.count()).select_from(Payment)) == 3


# --- cancelling --------------------------------------------------------------------------------


async def test_booker_cancelling_a_confirmed_booking_releases_its_seats(client):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer, capacity=5)
    booking = await booked(client, token, event["id"], seats=3)
    assert (await pay(client, token, booking["id"], GOOD_CARD)).status_code == 200
    assert await seats_left(client, event["id"]) == 2
    response = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancelled_at"] is not None
    assert await seats_left(client, event["id"]) == 5
    assert (await my_bookings(client, token))[booking["id"]]["status"] == "cancelled"


async def test_released_seats_can_be_booked_again(client):
    _, organizer = await register(client)
    _, first = await register(client)
    _, second = await register(client)
    event = await create_event(client, organizer, capacity=2)
    booking = await booked(client, first, event["id"], seats=2)
    assert (await book(client, second, event["id"], seats=2)).status_code == 409
    assert (await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(first))).status_code == 200
    assert (await book(client, second, event["id"], seats=2)).status_code == 201
    assert await seats_left(client, event["id"]) == 0


async def test_the_event_organizer_can_cancel_a_booking(client):
    _, organizer = await register(client)
    _, token = await register(client)
    event = await create_event(client, organizer, capacity=4)
    booking = await booked(client, token, event["id"], seats=2)
    response = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(organizer))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert await seats_left(client, event["id"]) == 4
    assert (await my_bookings(client, token))[booking["id"]]["status"] == "cancelled"


async def test_a_third_user_cannot_cancel_a_booking(client):
    _, organizer = await register(client)
    _, token = await register(client)
    _, stranger = await register(client)
    event = await create_event(client, organizer, capacity=4)
    booking = await booked(client, token, event["id"], seats=2)
    response = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(stranger))
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert (await my_bookings(client, token))[booking["id"]]["status"] == "pending"
    assert await seats_left(client, event["id"]) == 2


async def test_cancelling_twice_is_409_and_releases_the_seats_only_once(client):
    _, organizer = await register(client)
    _, token = await register(client)
    _, other = await register(client)
    event = await create_event(client, organizer, capacity=6)
    await booked(client, other, event["id"], seats=2)
    booking = await booked(client, token, event["id"], seats=3)
    assert (await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(token))).status_code == 200
    again = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(token))
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "booking_cancelled"
    by_organizer = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(organizer))
    assert by_organizer.status_code == 409
    assert await seats_left(client, event["id"]) == 4


async def test_cancelling_an_unknown_booking_is_404(client):
    _, token = await register(client)
    response = await client.post("/api/v1/bookings/999999/cancel", headers=bearer(token))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- listing -----------------------------------------------------------------------------------


async def test_bookings_list_holds_only_the_callers_bookings(client):
    _, organizer = await register(client)
    alice, alice_token = await register(client)
    _, bob_token = await register(client)
    _, carol_token = await register(client)
    event = await create_event(client, organizer, capacity=20)
    other_event = await create_event(client, organizer, capacity=20, title="Other")
    a1 = await booked(client, alice_token, event["id"], seats=1)
    a2 = await booked(client, alice_token, other_event["id"], seats=2)
    b1 = await booked(client, bob_token, event["id"], seats=3)

    alices = await my_bookings(client, alice_token)
    assert set(alices) == {a1["id"], a2["id"]}
    assert all(b["attendee_ids"] == [alice["id"]] for b in alices.values())
    assert set(await my_bookings(client, bob_token)) == {b1["id"]}
    assert await my_bookings(client, carol_token) == {}
    assert await my_bookings(client, organizer) == {}
    anonymous = await client.get("/api/v1/bookings")
    assert anonymous.status_code == 401
