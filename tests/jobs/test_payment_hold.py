"""A pending booking holds its seats for PAYMENT_HOLD_MINUTES, then the scheduler releases them and
tells the booker. Time is injected into the scheduler tick (`now=`), never slept."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from tests.api import bearer, book, create_event, inbox, pay, register, settled_tick
from tests.integration.pages import post_form, register_in_browser
from webapp.bookings.models import Booking
from webapp.bookings.payment_models import Payment
from webapp.db import create_sessionmaker
from webapp.notifications.models import Notification
from webapp.settings import load_settings

HOLD = timedelta(minutes=load_settings({"SECRET_KEY": "x" * 40}).payment_hold_minutes)


async def created_at(session, booking_id: int):
    booking = await session.get(Booking, booking_id, populate_existing=True)
    await session.commit()  # end the read: on SQLite it holds the write lock
    return booking.created_at


async def seats_left(client, event_id: int) -> int:
    return int((await client.get(f"/api/v1/events/{event_id}")).json()["seats_left"])


async def booking_status(client, token: str, booking_id: int) -> dict:
    bookings = (await client.get("/api/v1/bookings", headers=bearer(token))).json()["items"]
    return next(b for b in bookings if b["id"] == booking_id)


def test_the_hold_is_15_minutes_unless_configured():
    assert HOLD == timedelta(minutes=15)
    assert load_settings({"SECRET_KEY": "x" * 40, "PAYMENT_HOLD_MINUTES": "5"}).payment_hold_minutes == 5


async def test_an_unpaid_booking_is_released_after_the_hold_and_the_booker_is_told_once(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=4, title="Night Market")
    _, token = await register(client)
    expired = (await book(client, token, event["id"], seats=3)).json()
    assert await seats_left(client, event["id"]) == 1
    maker = create_sessionmaker(session.bind)
    deadline = await created_at(session, expired["id"]) + HOLD

    kept = await settled_tick(maker, now=deadline - timedelta(seconds=1))
    assert kept.released == 0
    assert (await booking_status(client, token, expired["id"]))["status"] == "pending"

    released = await settled_tick(maker, now=deadline)
    assert released.released == 1
    assert (await booking_status(client, token, expired["id"]))["status"] == "cancelled"
    assert await seats_left(client, event["id"]) == 4  # the seats are back
    assert (await settled_tick(maker, now=deadline + timedelta(minutes=5))).released == 0  # released once

    [notice] = (await inbox(client, token, query="type=booking_cancelled"))["items"]
    assert notice["title"] == "Booking cancelled: Night Market"
    assert "payment was not completed" in notice["body"].lower()
    assert notice["data"]["reason"] == "payment_not_completed"
    rows = list(await session.scalars(select(Notification).where(Notification.type == "booking_cancelled")))
    await session.commit()
    assert len(rows) == 1


async def test_a_fresh_booking_is_kept_while_an_older_one_is_released(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=10)
    _, token = await register(client)
    older = (await book(client, token, event["id"], seats=2)).json()
    newer = (await book(client, token, event["id"], seats=3)).json()
    # Pretend the older one was made long ago: the tick's clock sits between the two deadlines.
    older_row = await session.get(Booking, older["id"])
    older_row.created_at = older_row.created_at - timedelta(minutes=10)
    await session.commit()
    now = await created_at(session, newer["id"]) + HOLD - timedelta(minutes=1)
    assert (await settled_tick(create_sessionmaker(session.bind), now=now)).released == 1
    assert (await booking_status(client, token, older["id"]))["status"] == "cancelled"
    assert (await booking_status(client, token, newer["id"]))["status"] == "pending"
    assert await seats_left(client, event["id"]) == 7


async def test_paying_for_a_released_booking_is_409_and_charges_nothing(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=2)
    _, token = await register(client)
    booking = (await book(client, token, event["id"], seats=2)).json()
    # Nobody makes an event full without paying: once released, the seats are someone else's.
    _, other = await register(client)
    assert (await book(client, other, event["id"])).status_code == 409
    deadline = await created_at(session, booking["id"]) + HOLD
    assert (await settled_tick(create_sessionmaker(session.bind), now=deadline)).released == 1

    late = await pay(client, token, booking["id"])
    assert late.status_code == 409, late.text
    assert late.json()["error"]["code"] == "hold_expired"
    assert "not completed" in late.json()["error"]["message"]
    payments = list(await session.scalars(select(Payment).where(Payment.booking_id == booking["id"])))
    await session.commit()
    assert payments == []
    assert (await booking_status(client, token, booking["id"]))["status"] == "cancelled"
    assert (await book(client, other, event["id"])).status_code == 201


async def test_the_payment_page_says_when_to_pay_by(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, capacity=5)
    await register_in_browser(client, "payby@example.com", timezone="America/New_York")
    booked = await post_form(client, f"/events/{event['id']}/book", {"seats": "1"})
    assert booked.status_code == 302
    booking_id = int(booked.headers["location"].split("/")[2])
    deadline = (await created_at(session, booking_id) + HOLD).astimezone(ZoneInfo("America/New_York"))
    page = await client.get(booked.headers["location"])
    assert f"Pay by <strong>{deadline:%H:%M} {deadline.tzname()}</strong>" in page.text
