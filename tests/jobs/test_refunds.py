"""Cancelling an event cancels its bookings, refunds the paid ones through the payment gateway and
tells each attendee what happened to their money; a booker who cancels a paid booking gets their
money back too. A refund runs once however often its job does."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from tests.api import bearer, book, create_event, eventually, inbox, pay, register
from tests.integration.pages import register_in_browser
from webapp.bookings.payment_models import Payment
from webapp.outbox.models import OutboxMessage


async def booking_of(client: Any, token: str, booking_id: int) -> dict[str, Any]:
    bookings = (await client.get("/api/v1/bookings", headers=bearer(token))).json()["items"]
    return next(b for b in bookings if b["id"] == booking_id)


async def items(client: Any, token: str, type_: str, expect: int = 1) -> list[dict[str, Any]]:
    return list((await inbox(client, token, expect=expect, query=f"type={type_}"))["items"])


async def test_cancelling_an_event_cancels_its_bookings_and_refunds_the_paid_ones(client, app, session) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, title="Rooftop Jazz", price_cents=1500, currency="EUR")
    _, paid = await register(client)
    paid_booking = (await book(client, paid, event["id"], seats=2)).json()
    assert (await pay(client, paid, paid_booking["id"])).status_code == 200
    _, unpaid = await register(client)
    unpaid_booking = (await book(client, unpaid, event["id"])).json()

    response = await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(organizer))
    assert response.status_code == 200, response.text

    # Both bookings end cancelled, for the event's reason; only the paid one has money to return.
    mine = await booking_of(client, paid, paid_booking["id"])
    assert (mine["status"], mine["cancel_reason"]) == ("cancelled", "event_cancelled")
    theirs = await booking_of(client, unpaid, unpaid_booking["id"])
    assert (theirs["status"], theirs["cancel_reason"], theirs["refund_status"]) == (
        "cancelled",
        "event_cancelled",
        None,
    )

    async def refunded() -> dict[str, Any] | None:
        booking = await booking_of(client, paid, paid_booking["id"])
        return booking if booking["refund_status"] == "refunded" else None

    await eventually(refunded, within=20)
    gateway = app.state.payment_gateway
    payment = await session.scalar(select(Payment).where(Payment.booking_id == paid_booking["id"]))
    await session.commit()
    assert [(r.reference, r.amount_cents, r.currency) for r in gateway.refunds.values()] == [
        (payment.provider_reference, 3000, "EUR")
    ]
    assert payment.refund_reference == next(iter(gateway.refunds.values())).refund_reference

    # What each attendee is told about their money.
    [told_paid] = await items(client, paid, "event_cancelled")
    assert "30.00 EUR" in told_paid["body"] and "refunded to the card ending 4242" in told_paid["body"]
    [told_unpaid] = await items(client, unpaid, "event_cancelled")
    assert "Nothing was charged" in told_unpaid["body"]
    [sent] = await items(client, paid, "payment_refunded")
    assert sent["title"] == "Refund sent: Rooftop Jazz"
    [confirmation] = await items(client, paid, "booking_confirmed")
    assert confirmation["data"]["booking_status"] == "cancelled"  # it no longer shows a live booking
    assert sent["body"].startswith("30.00 EUR back to the card ending 4242")

    # The refund job delivered again (a lost acknowledgement, a retry): nothing is refunded twice.
    row = await session.scalar(select(OutboxMessage).where(OutboxMessage.actor_name == "refund_booking"))
    await session.commit()
    from jobs.bookings import refund_booking

    await asyncio.to_thread(refund_booking.fn, **row.payload)  # as a worker thread runs it
    assert len(gateway.refunds) == 1
    assert len(await items(client, paid, "payment_refunded")) == 1


async def test_a_booker_who_cancels_a_paid_booking_gets_the_money_back(client, app) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, title="Pottery", price_cents=4500, currency="EUR")
    _, booker = await register(client)
    booking = (await book(client, booker, event["id"])).json()
    assert (await pay(client, booker, booking["id"])).status_code == 200
    cancelled = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(booker))
    assert cancelled.status_code == 200
    assert cancelled.json()["refund_status"] in ("pending", "refunded")
    assert cancelled.json()["cancel_reason"] is None
    [told] = await items(client, booker, "booking_cancelled")
    assert "45.00 EUR is being refunded to the card ending 4242" in told["body"]
    [sent] = await items(client, booker, "payment_refunded")
    assert sent["title"] == "Refund sent: Pottery"
    assert len(app.state.payment_gateway.refunds) == 1


async def test_a_free_booking_cancelled_with_its_event_mentions_no_money(client) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, title="Picnic", price_cents=0)
    _, guest = await register(client)
    booking = (await book(client, guest, event["id"])).json()
    assert booking["status"] == "confirmed"
    assert (await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(organizer))).status_code == 200
    assert (await booking_of(client, guest, booking["id"]))["refund_status"] is None
    [told] = await items(client, guest, "event_cancelled")
    assert "refund" not in told["body"].lower() and "charged" not in told["body"].lower()


async def test_the_bookings_page_shows_a_cancelled_events_booking_as_cancelled_and_refunded(client) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, title="Harbour Festival", price_cents=2500, currency="EUR")
    await register_in_browser(client, "refunded-guest@example.com")
    csrf = {"x-csrftoken": client.cookies["tidings_csrf"]}
    booking = (await client.post(f"/api/v1/events/{event['id']}/bookings", json={"seats": 1}, headers=csrf)).json()
    paid = await client.post(
        f"/api/v1/bookings/{booking['id']}/pay", json={"card_number": "4242 4242 4242 4242"}, headers=csrf
    )
    assert paid.status_code == 200, paid.text
    assert (await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(organizer))).status_code == 200

    async def refunded_page() -> str | None:
        page = (await client.get("/bookings")).text
        return page if "Refunded 25.00 EUR" in page else None

    page = await eventually(refunded_page, within=20)
    row = page[page.index(f'id="booking-{booking["id"]}"') :].split("</tr>")[0]
    assert "status-cancelled" in row and "status-confirmed" not in row
    assert "event cancelled" in row  # the event's badge beside its title
    assert f"/bookings/{booking['id']}/cancel" not in row and ">Pay<" not in row
