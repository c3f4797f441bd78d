"""Flash messages in a real Chromium: every form that changes something says what it did on the
page its redirect lands on — your own free booking, cancelling it, an organizer cancelling an
event, announcements sent — in a polite live region (role=status), once: a reload does not show
it again.

Screenshots go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import BrowserContext, Dialog, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.conftest import Api, ContextFactory, Screenshots
from tests.e2e.layout_helpers import phone_or_desktop
from tests.e2e.notifications_helpers import ApiClient, Person, make_admin, sign_in, wait_in_page
from tests.e2e.test_security_headers_ui import event_fields

# What the flash's live region said after the page loaded (forms.js puts its words back a moment
# after the page is up, so that screen readers hear a change).
FLASH_SPY = """
document.addEventListener("DOMContentLoaded", () => {
  window.__flashSaid = [];
  const flash = document.querySelector("[data-flash]");
  if (!flash) return;
  new MutationObserver(() => {
    if (flash.textContent) window.__flashSaid.push(flash.textContent);
  }).observe(flash, { childList: true, characterData: true, subtree: true });
});
"""


async def member_page(new_context: ContextFactory, base_url: str, person: Person, viewport: str = "desktop") -> Page:
    context: BrowserContext = await phone_or_desktop(new_context, viewport)
    await sign_in(context, base_url, person)
    await context.add_init_script(FLASH_SPY)
    page = await context.new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(accept(dialog)))
    return page


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def expect_flash_once(page: Page, text: str, shot: Screenshots, label: str) -> None:
    """The page says `text` in one polite live region, announced after load; a reload says nothing."""
    flash = page.locator("main [role=status][data-flash]")
    await expect(flash).to_have_count(1)
    await expect(flash).to_have_text(text)
    assert await flash.get_attribute("aria-live") in (None, "polite"), "role=status is polite; nothing overrides it"
    assert await page.locator("main [role=alert]").count() == 0
    await wait_in_page(page, "(window.__flashSaid || []).length > 0", within_ms=5_000)
    assert await page.evaluate("window.__flashSaid") == [text]
    await shot(page, label)
    await page.reload()
    await expect(page.locator("main h1")).to_be_visible()
    await expect(page.locator("[data-flash]")).to_have_count(0)


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
async def test_booking_and_cancelling_your_own_booking_say_so_once(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, api: Api
) -> None:
    client = ApiClient(base_url)
    olga = await client.register("olga@example.com", "Olga Organizer")
    event = api.create_event(olga.token, **event_fields("Harbour Lights"))
    bob = await client.register("bob@example.com", "Bob Member")
    page = await member_page(new_context, base_url, bob, viewport)

    await page.goto(f"/events/{event['id']}")
    await page.get_by_label("Seats", exact=True).fill("2")
    await page.get_by_role("button", name="Book", exact=True).click()
    await page.wait_for_url("**/bookings")
    await expect_flash_once(page, "You're booked for Harbour Lights: 2 seats.", shot, f"{viewport}-booked")

    await page.get_by_role("row").filter(has_text="Harbour Lights").get_by_role("button", name="Cancel").click()
    await page.wait_for_url("**/bookings")
    await expect(page.get_by_role("row").filter(has_text="Harbour Lights").locator(".status")).to_have_text("cancelled")
    await expect_flash_once(page, "Your booking for Harbour Lights is cancelled.", shot, f"{viewport}-cancelled")


async def test_paying_for_a_booking_says_so_once(
    new_context: ContextFactory, shot: Screenshots, base_url: str, api: Api
) -> None:
    client = ApiClient(base_url)
    olga = await client.register("olga@example.com", "Olga Organizer")
    event = api.create_event(olga.token, **{**event_fields("Night Market"), "price_cents": 1500})
    bob = await client.register("bob@example.com", "Bob Member")
    booking = api.book(bob.token, event["id"], 1)
    page = await member_page(new_context, base_url, bob)
    await page.goto(f"/bookings/{booking['id']}/pay")
    await page.get_by_label("Card number").fill("4242 4242 4242 4242")
    await page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    await page.wait_for_url("**/bookings")
    await expect_flash_once(page, "Payment received: you're booked for Night Market.", shot, "paid")


async def test_an_organizer_cancelling_a_booking_and_the_event_is_told_once(
    new_context: ContextFactory, shot: Screenshots, base_url: str, api: Api
) -> None:
    client = ApiClient(base_url)
    olga = await client.register("olga@example.com", "Olga Organizer")
    event = api.create_event(olga.token, **event_fields("Harbour Lights"))
    bob = await client.register("bob@example.com", "Bob Member")
    cleo = await client.register("cleo@example.com", "Cleo Member")
    api.book(bob.token, event["id"], 2)
    api.book(cleo.token, event["id"], 1)
    page = await member_page(new_context, base_url, olga)

    await page.goto(f"/organizer/events/{event['id']}")
    await page.get_by_role("row").filter(has_text="Cleo Member").get_by_role("button", name="Cancel").click()
    await page.wait_for_url(f"**/organizer/events/{event['id']}")
    await expect_flash_once(
        page, "The booking of 1 seat for Harbour Lights is cancelled.", shot, "organizer-cancelled-a-booking"
    )

    await page.get_by_role("button", name="Cancel event").click()
    await page.wait_for_url(f"**/organizer/events/{event['id']}")
    await expect(page.locator(".page-header .status")).to_have_text("cancelled")
    await expect_flash_once(
        page,
        "Harbour Lights is cancelled. Its attendees are being told, and paid bookings refunded.",
        shot,
        "organizer-cancelled-the-event",
    )


async def test_announcements_sent_say_so_once(
    new_context: ContextFactory, shot: Screenshots, base_url: str, api: Api, session: AsyncSession
) -> None:
    client = ApiClient(base_url)
    ada = await client.register("ada@example.com", "Ada Admin")
    await make_admin(session, ada)
    event = api.create_event(ada.token, **event_fields("Harbour Lights"))
    bob = await client.register("bob@example.com", "Bob Member")
    api.book(bob.token, event["id"], 1)
    page = await member_page(new_context, base_url, ada)

    await page.goto(f"/organizer/events/{event['id']}")
    await page.get_by_text("Send an announcement to confirmed attendees").click()
    await page.get_by_label("Title").fill("Bring a coat")
    await page.get_by_role("button", name="Send", exact=True).click()
    await page.wait_for_url(f"**/organizer/events/{event['id']}")
    await expect_flash_once(
        page,
        "“Bring a coat” is on its way to 1 attendee. Its delivery report follows it live on the event page.",
        shot,
        "organizer-announced",
    )

    await page.goto("/admin/announcements")
    await page.get_by_label("Title").fill("Maintenance at noon")
    await page.get_by_role("button", name="Send to everyone").click()
    await page.wait_for_url("**/admin/announcements")
    await expect_flash_once(
        page,
        "Announcement sent to everyone: “Maintenance at noon”. Its report below follows it as it arrives.",
        shot,
        "admin-announced",
    )
    # Each was sent once, whatever the reloads.
    titles = [n["title"] for n in (await client.notifications(bob))["items"] if n["type"] == "general"]
    assert sorted(titles) == ["Bring a coat", "Maintenance at noon"]


async def test_a_forged_flash_is_not_shown_and_is_deleted(new_context: ContextFactory, base_url: str) -> None:
    bob = await ApiClient(base_url).register("bob@example.com", "Bob Member")
    page = await member_page(new_context, base_url, bob)
    context = page.context
    await context.add_cookies([{"name": "tidings_flash", "value": "eyJ1IjpudWxsLCJtIjoiaGkifQ.00", "url": base_url}])
    await page.goto("/bookings")
    await expect(page.get_by_role("heading", name="My bookings")).to_be_visible()
    await expect(page.locator("[data-flash]")).to_have_count(0)
    assert not [c for c in await context.cookies() if c["name"] == "tidings_flash"], "a refused flash is deleted too"
