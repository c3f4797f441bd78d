"""In the browser, at a desktop and a phone size: the organizer's bell counts the bookings on their
event in one item; cancelling the event leaves every booking cancelled (no "Cancel" offered any
more) and the attendee sees the refund on "My bookings" and in the bell."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import Api, ContextFactory, Screenshots
from tests.e2e.notifications_helpers import PANEL, Person, open_app, open_dropdown, sign_in
from tests.e2e.test_booking_flow import jazz_night

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
CARD = "4242 4242 4242 4242"


def person(api: Api, name: str) -> Person:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    token = api.register(email, name)
    return Person(id=0, email=email, name=name, token=token)


@pytest.mark.parametrize("size", sorted(VIEWPORTS))
async def test_organizer_news_and_a_cancelled_events_refund(
    size: str, api: Api, new_context: ContextFactory, base_url: str, shot: Screenshots
) -> None:
    organizer, ada, ben = person(api, "Nora"), person(api, "Ada"), person(api, "Ben")
    spec = jazz_night()
    event = api.create_event(
        organizer.token,
        title=spec.title,
        description=spec.description,
        venue=spec.venue,
        starts_at=spec.starts.isoformat(),
        ends_at=spec.ends.isoformat(),
        timezone=spec.timezone,
        capacity=spec.capacity,
        price_cents=2500,
        currency="EUR",
    )
    for guest, seats in ((ada, 2), (ben, 1)):
        booking = api.book(guest.token, event["id"], seats)
        api.pay(guest.token, booking["id"], CARD)

    # The organizer: one unread item that counts both bookings.
    organizer_context = await new_context(viewport=VIEWPORTS[size])
    await sign_in(organizer_context, base_url, organizer)
    page = await open_app(organizer_context, f"/organizer/events/{event['id']}")
    panel = await open_dropdown(page)
    news = panel.locator("[data-notification-id]", has_text=f"2 new bookings for {spec.title}")
    await expect(news).to_have_count(1)
    await expect(news).to_contain_text("3 of 40 seats booked")
    await shot(page, f"{size} organizer bell")
    await page.keyboard.press("Escape")
    await expect(page.locator(PANEL)).to_be_hidden()

    # Cancelling the event cancels both bookings and offers no per-booking "Cancel" any more.
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel event").click()
    await page.goto(f"/organizer/events/{event['id']}")
    attendees = page.locator("table tbody tr")
    await expect(attendees).to_have_count(2)
    await expect(attendees.locator(".status-cancelled")).to_have_count(2)
    await expect(page.locator('form[action^="/bookings/"]')).to_have_count(0)
    await shot(page, f"{size} organizer after cancelling")

    # Ada: her booking shows cancelled and refunded, and the bell says where the money went.
    ada_context = await new_context(viewport=VIEWPORTS[size])
    await sign_in(ada_context, base_url, ada)
    page = await open_app(ada_context, "/bookings")
    row = page.locator("tr", has_text=spec.title)
    for _ in range(40):  # the refund job runs in the background: reload until it has
        if await row.get_by_text("Refunded 50.00 EUR").count():
            break
        await page.wait_for_timeout(250)
        await page.reload()
    await expect(row.get_by_text("Refunded 50.00 EUR")).to_be_visible()
    await expect(row.get_by_text("cancelled", exact=True)).to_be_visible()  # the booking's status
    await expect(row.locator(".status-confirmed")).to_have_count(0)
    await expect(row.get_by_role("button", name="Cancel")).to_have_count(0)
    panel = await open_dropdown(page)
    await expect(panel.get_by_text(f"Refund sent: {spec.title}")).to_be_visible()
    await expect(panel.get_by_text("refunded to the card ending 4242")).to_be_visible()
    await shot(page, f"{size} attendee refunded")
