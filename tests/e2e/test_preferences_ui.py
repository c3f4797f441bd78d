"""The preferences page on a phone and a desktop: a cell switched off and saved, a locked cell
disabled with its reason, quiet hours set in the user's own zone, an event muted from the
notification dropdown and unmuted again on the event's page."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.conftest import Api, ContextFactory, Screenshots
from tests.e2e.layout_helpers import VIEWPORT_NAMES, viewport_options
from tests.e2e.notifications_helpers import (
    NOTIFICATION_SPY,
    ApiClient,
    expect_badge,
    make_admin,
    open_app,
    open_dropdown,
    seed_notifications,
    sign_in,
)
from tests.e2e.test_notifications_ui import toast
from tests.e2e.test_security_headers_ui import event_fields


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_switching_a_channel_quiet_hours_and_muting_an_event(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    client = ApiClient(base_url)
    organizer = await client.register(f"org-prefs-{viewport}@example.com", "Olga Organizer")
    person = await client.register(f"prefs-{viewport}@example.com", "Pia Prefs", timezone="Europe/Berlin")
    event = Api(base_url).create_event(organizer.token, **event_fields("Harbour Lights"))
    await seed_notifications(
        session,
        person,
        {
            "type": "event_updated",
            "title": "Harbour Lights moved",
            "body": "Now at Pier 8.",
            "data": {"event_id": event["id"]},
        },
    )
    context = await new_context(**viewport_options(viewport))
    await sign_in(context, base_url, person)
    page = await open_app(context, "/preferences")
    await expect(page.get_by_role("heading", name="Notification preferences", level=1)).to_be_visible()

    # A cell: event updates by email, off; saved, and still off after the redirect.
    email_updates = page.get_by_role("checkbox", name="Email for Event updated")
    await expect(email_updates).to_be_checked()
    await email_updates.click()
    await expect(email_updates).not_to_be_checked()
    await page.get_by_role("button", name="Save channels").click()
    await expect(page.locator("[data-flash]")).to_have_text("Your notification channels are saved.")
    await expect(page.get_by_role("checkbox", name="Email for Event updated")).not_to_be_checked()
    prefs = await client._request("GET", "/api/v1/me/preferences", person.token)
    assert prefs["channels"]["event_updated"]["email"] is False

    # A locked cell: on, disabled, and the page says why.
    locked = page.get_by_role("checkbox", name="Email for Payment failed")
    await expect(locked).to_be_checked()
    await expect(locked).to_be_disabled()
    await expect(page.locator("#why-payment_failed")).to_contain_text("A failed payment can cost you your seat")
    await expect(page.get_by_role("checkbox", name="In-app for Payment failed")).to_be_disabled()
    await shot(page, "grid-saved")

    # Quiet hours, in the user's own zone.
    await expect(page.locator("[data-timezone]")).to_have_text("Europe/Berlin")
    await page.get_by_label("From").fill("22:30")
    await page.get_by_label("Until").fill("06:45")
    await page.get_by_role("button", name="Save quiet hours").click()
    await expect(page.locator("[data-flash]")).to_contain_text("Quiet hours are 22:30–06:45 (Europe/Berlin)")
    await expect(page.locator("[data-quiet-state]")).to_contain_text("22:30–06:45")
    await shot(page, "quiet-hours-set")

    # Muting from the dropdown: the button becomes a note; the event page shows it, and unmutes.
    panel = await open_dropdown(page)
    item = panel.locator(".notif-event_updated")
    await expect(item).to_contain_text("Harbour Lights moved")
    await item.get_by_role("button", name="Stop updates about this event").click()
    await expect(item.get_by_role("status")).to_contain_text("Muted")
    await shot(page, "muted-from-the-dropdown")
    await page.keyboard.press("Escape")
    await page.goto(f"/events/{event['id']}")
    muted = page.locator("[data-event-muted]")
    await expect(muted).to_contain_text("Updates muted")
    await shot(page, "event-page-muted")
    await muted.get_by_role("button", name="Unmute").click()
    await expect(page.locator("[data-flash]")).to_contain_text("Updates about Harbour Lights are on again.")
    await expect(page.locator("[data-event-muted]")).to_have_count(0)
    prefs = await client._request("GET", "/api/v1/me/preferences", person.token)
    assert prefs["muted_events"] == [] and prefs["quiet_hours"] == {"start": "22:30", "end": "06:45"}


async def test_the_browser_column_and_a_mute_decide_the_system_notification_of_a_hidden_tab(
    new_context: ContextFactory, base_url: str, session: AsyncSession
) -> None:
    client = ApiClient(base_url)
    admin = await client.register("ada-prefs@example.com", "Ada Admin")
    await make_admin(session, admin)
    person = await client.register("bob-prefs@example.com", "Bob Member")
    event = Api(base_url).create_event(admin.token, **event_fields("Harbour Lights"))
    context = await new_context(permissions=["notifications"])
    await context.add_init_script(NOTIFICATION_SPY)
    await sign_in(context, base_url, person)
    page = await open_app(context, stream=True)

    async def told(title: str, event_id: int | None = None) -> list[dict[str, str]]:
        """Announces `title`; the system notifications the hidden tab showed once its toast is up."""
        await client.announce(admin, title, event_id=event_id)
        await expect(toast(page, title)).to_have_count(1)  # in-app: always
        await page.wait_for_timeout(500)  # the preferences are read before a system notification
        return [call["title"] for call in await page.evaluate("window.__notifications")]

    await client._request(
        "PUT", "/api/v1/me/preferences", person.token, json={"channels": {"general": {"browser": False}}}
    )
    assert await told("Doors open at seven") == []
    # Switched back on: the very next one shows, without reloading the page.
    await client._request(
        "PUT", "/api/v1/me/preferences", person.token, json={"channels": {"general": {"browser": True}}}
    )
    assert await told("Welcome to the season") == ["Welcome to the season"]
    # A muted event's news (here the booking's confirmation) reaches the page but raises no
    # system notification.
    await client._request("PUT", f"/api/v1/events/{event['id']}/mute", person.token)
    Api(base_url).book(person.token, event["id"], 1)
    await expect_badge(page, 3)
    await expect(toast(page, "Booking confirmed: Harbour Lights")).to_have_count(1)
    await page.wait_for_timeout(500)
    assert [call["title"] for call in await page.evaluate("window.__notifications")] == ["Welcome to the season"]
