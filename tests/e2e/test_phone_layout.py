"""The bell, its dropdown and the tables on a 390×844 phone and a 1280×800 desktop, measured in a
real Chromium: the open panel lies inside the viewport, every item and "View all" can be hit, the
badge sits beside the bell at every count, and tables show their actions without a sideways scroll.

Screenshots of each state go to tests/e2e/artifacts/ (light and dark).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import wait_for_live_jobs
from tests.e2e.conftest import Api, ContextFactory, Screenshots
from tests.e2e.layout_helpers import (
    VIEWPORT_NAMES,
    box,
    dark,
    expect_hittable,
    horizontal_overflow,
    line_count,
    phone_or_desktop,
    viewport_box,
)
from tests.e2e.notifications_helpers import (
    BELL,
    PANEL,
    PANEL_ITEMS,
    ApiClient,
    expect_badge,
    open_app,
    open_dropdown,
    seed_notifications,
    sign_in,
)
from webapp.auth.middleware import ACCESS_COOKIE


def local_at(zone: str, days_ahead: int, hour: int, minute: int = 0) -> datetime:
    day = datetime.now(ZoneInfo(zone)) + timedelta(days=days_ahead)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0)


# --- the dropdown -------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_open_dropdown_lies_inside_the_viewport_and_every_item_can_be_hit(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    bob = await ApiClient(base_url).register("bob@example.com", "Bob Member")
    # Ten in the dropdown, both sections, long text: the panel has to scroll inside itself.
    await seed_notifications(
        session,
        bob,
        *(
            {
                "type": kind,
                "title": f"Earlier {n}: Harbour Lights Jazz Night on Pier 7 moved to the upper deck",
                "body": "Doors open half an hour early; bring a coat, the deck is windy after dark.",
                "read": True,
            }
            for n, kind in enumerate(["general", "event_updated", "event_reminder", "review_request"], 1)
        ),
        *(
            {"type": kind, "title": f"Unread {n}: Seats confirmed for Harbour Lights", "body": "2 seats, 50.00 EUR"}
            for n, kind in enumerate(["booking_confirmed", "payment_failed", "event_cancelled", "general"] * 2, 1)
        ),
    )
    context = await phone_or_desktop(new_context, viewport)
    await sign_in(context, base_url, bob)
    page = await open_app(context, stream=True)
    await expect_badge(page, 8)
    await shot(page, f"{viewport}-closed")

    panel = await open_dropdown(page)
    await expect(page.locator(PANEL_ITEMS)).to_have_count(10)
    screen = await viewport_box(page)
    panel_box = await box(panel)
    print(f"\n{viewport}: viewport {screen}; open panel {panel_box}")
    assert panel_box.inside(screen), f"the open panel ({panel_box}) leaves the {viewport} viewport ({screen})"
    if viewport == "phone":
        # On a phone the panel spans the screen rather than hanging off the bell.
        assert panel_box.width >= screen.width - 32, f"the panel is only {panel_box.width:.0f} px wide"
    scrolls = await panel.evaluate("e => e.scrollHeight > e.clientHeight && getComputedStyle(e).overflowY")
    assert scrolls in ("auto", "scroll"), "ten long items should make the panel scroll inside itself"
    await shot(page, f"{viewport}-open")
    await dark(page, shot, f"{viewport}-open")

    await expect_hittable(panel.get_by_role("heading", name="Notifications"), "the heading")
    await expect_hittable(panel.get_by_role("button", name="Mark all as read"), '"Mark all as read"')
    for n in range(10):
        entry = page.locator(PANEL_ITEMS).nth(n)
        await expect_hittable(entry.locator(".notif-link"), f"item {n + 1}")
        mark = entry.locator(".notif-mark-read, .notif-mark-unread").filter(visible=True)
        await expect_hittable(mark, f"the read/unread button of item {n + 1}")
        assert (await box(page.locator(PANEL))).inside(screen), "the panel moved out of the viewport"
    await shot(page, f"{viewport}-scrolled-to-the-last-item")
    view_all = panel.get_by_role("link", name="View all")
    await expect_hittable(view_all, '"View all"')
    await view_all.click()
    await page.wait_for_url("**/notifications")
    await expect(page.get_by_role("heading", name="Notifications", level=1)).to_be_visible()
    await shot(page, f"{viewport}-inbox-page")
    assert not await horizontal_overflow(page), await horizontal_overflow(page)


# --- the badge -----------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_badge_sits_beside_the_bell_at_every_count(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    bob = await ApiClient(base_url).register("bob@example.com", "Bob Member")
    context = await phone_or_desktop(new_context, viewport)
    await sign_in(context, base_url, bob)
    page = await open_app(context)
    seeded = 0
    for count, shown in ((1, "1"), (42, "42"), (100, "99+")):
        await seed_notifications(
            session, bob, *({"type": "general", "title": f"News {n}"} for n in range(count - seeded))
        )
        seeded = count
        await page.reload()
        badge, bell = page.locator("#notif-badge"), page.locator(BELL)
        await expect(badge).to_have_text(shown)
        spoken = "more than 99" if count > 99 else str(count)
        await expect(bell).to_have_attribute("aria-label", f"Notifications, {spoken} unread")
        badge_box = await box(badge)
        icon_box = await box(page.locator(f"{BELL} .notif-bell-icon"))
        bell_box = await box(bell)
        print(f"\n{viewport}, badge {shown!r}: badge {badge_box}; bell icon {icon_box}; bell button {bell_box}")
        assert not badge_box.intersects(icon_box, tolerance=0), f"the badge {shown!r} covers the bell icon"
        assert badge_box.inside(bell_box), f"the badge {shown!r} hangs outside the bell button"
        assert badge_box.inside(await viewport_box(page)), f"the badge {shown!r} leaves the viewport"
        for neighbour in (".nav-user a", "a.brand", "nav.nav a"):
            for other in await page.locator(neighbour).all():
                assert not badge_box.intersects(await box(other)), f"the badge {shown!r} covers {neighbour}"
        await expect_hittable(page.locator(f"{BELL} .notif-bell-icon"), f"the bell icon beside {shown!r}")
        await shot(page, f"{viewport}-badge-{shown}")
    await dark(page, shot, f"{viewport}-badge-99")


# --- tables --------------------------------------------------------------------------------------


async def bookings_and_attendees(api: Api) -> tuple[str, str, int]:
    """An organizer with a paid and a free event; a member with a pending booking (Pay, Cancel) on
    the paid one and a confirmed booking on the free one. Returns both tokens and the paid event."""
    organizer = api.register("olga@example.com", "Olga Organizer", timezone="Europe/Berlin")
    member = api.register("mia@example.com", "Mia Member", timezone="Europe/London")
    paid, free = (
        api.create_event(
            organizer,
            title=title,
            venue="Pier 7, Hamburg",
            starts_at=(starts := local_at("Europe/Berlin", days, 19, 30)).isoformat(),
            ends_at=(starts + timedelta(hours=3)).isoformat(),
            timezone="Europe/Berlin",
            capacity=40,
            price_cents=price,
            currency="EUR",
        )
        for title, days, price in (("Harbour Lights Jazz Night", 5, 2500), ("A Free Morning Walk Along the Elbe", 7, 0))
    )
    api.book(member, paid["id"], 2)
    api.book(member, free["id"], 1)
    return organizer, member, int(paid["id"])


async def expect_table_usable(page: Page, viewport: str, actions: list[str], dates: int) -> None:
    """No hidden sideways scroll, every action in the table can be hit, dates take one or two lines."""
    overflow = await horizontal_overflow(page)
    assert not overflow, f"{viewport} {page.url}: content wider than its box: {overflow}"
    table = page.locator("table.table")
    for name in actions:
        controls = table.get_by_role("link", name=name, exact=True).or_(
            table.get_by_role("button", name=name, exact=True)
        )
        assert await controls.count() > 0, f"no {name!r} in the table"
        for n in range(await controls.count()):
            await expect_hittable(controls.nth(n), f"{name!r} #{n + 1} on {page.url}")
    cells = page.locator("td[data-label='When'], td[data-label='Starts']")
    assert await cells.count() == dates
    for n in range(dates):
        lines = await line_count(cells.nth(n))
        assert lines <= 2, f"{viewport}: a date takes {lines} lines: {await cells.nth(n).inner_text()!r}"


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_tables_show_their_actions_without_a_sideways_scroll(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, api: Api, engine: Any
) -> None:
    organizer, member, paid_event = await bookings_and_attendees(api)
    # The bookings' news (a confirmation, the organizer's "booked") is told before the pages open:
    # a toast arriving meanwhile would lie over the table's buttons on a phone (seen under load).
    await wait_for_live_jobs(engine)

    context = await phone_or_desktop(new_context, viewport)
    await context.add_cookies([{"name": ACCESS_COOKIE, "value": member, "url": base_url, "httpOnly": True}])
    page = await context.new_page()
    await page.goto("/bookings")
    await expect(page.get_by_role("heading", name="My bookings")).to_be_visible()
    await expect(page.locator("table.table tbody tr")).to_have_count(2)
    await shot(page, f"{viewport}-my-bookings")
    await dark(page, shot, f"{viewport}-my-bookings")
    await expect_table_usable(page, viewport, ["Pay", "Cancel", "Harbour Lights Jazz Night"], dates=2)
    if viewport == "phone":
        # Stacked: each booking is one card, its fields labelled, one under the other.
        row = page.locator("table.table tbody tr").filter(has_text="Harbour Lights Jazz Night")
        assert (await box(row)).width <= (await viewport_box(page)).width
        await expect(row.locator("td[data-label='Amount']")).to_contain_text("50.00 EUR")

    organizer_context = await phone_or_desktop(new_context, viewport)
    await organizer_context.add_cookies(
        [{"name": ACCESS_COOKIE, "value": organizer, "url": base_url, "httpOnly": True}]
    )
    page = await organizer_context.new_page()
    await page.goto("/organizer")
    await expect(page.locator("table.table tbody tr")).to_have_count(2)
    await shot(page, f"{viewport}-organizer-events")
    await expect_table_usable(page, viewport, ["Attendees"], dates=2)

    await page.goto(f"/organizer/events/{paid_event}")
    await expect(page.locator("table.table tbody tr")).to_have_count(1)
    await shot(page, f"{viewport}-attendees")
    await dark(page, shot, f"{viewport}-attendees")
    await expect_table_usable(page, viewport, ["Cancel"], dates=0)
