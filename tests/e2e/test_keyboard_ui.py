"""The notification dropdown from the keyboard, in a real Chromium at 1280×800 and 390×844:
marking items read keeps the focus on the next sensible control (never <body>), Escape closes the
panel and gives the focus back to the bell, and Tab out of the panel closes it (the panel is a
non-modal dialog: focus is not trapped in it).

Screenshots go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.conftest import ContextFactory, Screenshots
from tests.e2e.layout_helpers import VIEWPORT_NAMES, phone_or_desktop
from tests.e2e.notifications_helpers import (
    BELL,
    PANEL,
    PANEL_ITEMS,
    ApiClient,
    expect_badge,
    open_app,
    seed_notifications,
    sign_in,
)

# What has the focus, in words a failure message can show: "button Mark as read: Doors at seven".
FOCUSED = """() => {
    const e = document.activeElement;
    if (!e || e === document.body) return "body";
    const name = e.getAttribute("aria-label") || e.textContent.trim().replace(/\\s+/g, " ").slice(0, 60);
    return `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""} ${name}`;
}"""


IN_PANEL = "document.getElementById('notif-panel').contains(document.activeElement)"


async def focused(page: Page) -> str:
    return await page.evaluate(FOCUSED)  # type: ignore[no-any-return]


async def expect_focus(page: Page, expected: str) -> None:
    """document.activeElement is described by `expected` (see FOCUSED), soon."""
    for _ in range(100):
        if await focused(page) == expected:
            return
        await page.wait_for_timeout(50)
    assert await focused(page) == expected


async def expect_focus_in_panel(page: Page) -> None:
    """The focus is inside the dropdown, soon. (A polled evaluate: the page's CSP refuses the string
    predicates of wait_for_function.)"""
    for _ in range(100):
        if await page.evaluate(IN_PANEL):
            return
        await page.wait_for_timeout(50)
    assert await page.evaluate(IN_PANEL), f"the focus is on {await focused(page)}, not in the dropdown"


async def open_with_keyboard(page: Page) -> None:
    """Focus the bell, press Enter: the panel opens with the focus on its first item."""
    await page.locator(BELL).focus()
    async with page.expect_response(lambda r: r.url.endswith("/notifications/panel")):
        await page.keyboard.press("Enter")
    await expect(page.locator(PANEL)).to_be_visible()
    await expect(page.locator(BELL)).to_have_attribute("aria-expanded", "true")
    # The focus moves in once htmx has swapped the fetched items in, a moment after the response:
    # a Tab pressed before that starts from the bell (on a phone, out of the panel, closing it).
    await expect_focus_in_panel(page)


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_marking_read_from_the_keyboard_moves_focus_to_the_next_item_then_the_heading(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    bob = await ApiClient(base_url).register("bob@example.com", "Bob Member")
    titles = ["Doors at seven", "Bring a coat", "Set list is out"]
    await seed_notifications(
        session,
        bob,
        {"type": "general", "title": "Welcome to Tidings", "read": True},
        *({"type": "general", "title": title} for title in reversed(titles)),  # newest first in the panel
    )
    context = await phone_or_desktop(new_context, viewport)
    await sign_in(context, base_url, bob)
    page = await open_app(context, stream=True)
    await expect_badge(page, 3)

    await open_with_keyboard(page)
    await expect(page.locator(PANEL_ITEMS)).to_have_count(4)
    await expect_focus(page, "a " + await first_link_text(page))
    # From the first item's link, Tab reaches its "Mark as read" button.
    await page.keyboard.press("Tab")
    await expect_focus(page, f"button Mark as read: {titles[0]}")
    await shot(page, f"{viewport}-focus-on-mark-read")

    # Enter marks it read; the focus goes to the next unread item's button, then the next.
    for n in range(len(titles) - 1):
        await page.keyboard.press("Enter")
        await expect_focus(page, f"button Mark as read: {titles[n + 1]}")
        await expect_badge(page, 2 - n)
    await shot(page, f"{viewport}-focus-moved-to-the-last-unread")
    # The last one: nothing unread is left, so the focus goes to the panel's heading.
    await page.keyboard.press("Space")
    await expect_focus(page, "h2#notif-heading Notifications")
    await expect_badge(page, 0)
    await expect(page.locator(PANEL)).to_be_visible()
    await shot(page, f"{viewport}-focus-on-the-heading")

    # Marking one unread again keeps the focus on that item (its button is "Mark as read" now).
    await page.locator(PANEL_ITEMS).first.locator(".notif-mark-unread").focus()
    await page.keyboard.press("Enter")
    await expect_focus(page, f"button Mark as read: {titles[0]}")
    await expect_badge(page, 1)

    # "Mark all as read" from the keyboard: the focus goes to the heading, and stays there while
    # the panel regroups its sections.
    await page.get_by_role("button", name="Mark all as read").focus()
    await page.keyboard.press("Enter")
    await expect_badge(page, 0)
    await expect_focus(page, "h2#notif-heading Notifications")
    await page.wait_for_timeout(300)  # the stream's "read" refetches the panel: focus must survive it
    await expect_focus(page, "h2#notif-heading Notifications")

    # Escape closes the panel and gives the focus back to the bell.
    await page.keyboard.press("Escape")
    await expect(page.locator(PANEL)).to_be_hidden()
    await expect(page.locator(BELL)).to_have_attribute("aria-expanded", "false")
    await expect_focus(page, "button#notif-bell Notifications")


async def first_link_text(page: Page) -> str:
    link = page.locator(PANEL_ITEMS).first.locator(".notif-link")
    return " ".join((await link.text_content() or "").split())[:60]


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_escape_returns_focus_to_the_bell_tab_out_closes_the_dropdown_and_the_inbox_page_keeps_focus(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    bob = await ApiClient(base_url).register("bob@example.com", "Bob Member")
    await seed_notifications(
        session, bob, {"type": "general", "title": "Doors at seven"}, {"type": "general", "title": "Bring a coat"}
    )
    context = await phone_or_desktop(new_context, viewport)
    await sign_in(context, base_url, bob)
    page = await open_app(context, stream=True)
    await expect_badge(page, 2)

    # Escape from deep inside the panel.
    await open_with_keyboard(page)
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    assert await page.evaluate(IN_PANEL)
    await page.keyboard.press("Escape")
    await expect(page.locator(PANEL)).to_be_hidden()
    await expect_focus(page, "button#notif-bell Notifications, 2 unread")

    # Tab through the panel: it stays open while the focus is in it, and closes when the focus
    # leaves it, which lands on the control after the bell in the header (the profile link).
    await open_with_keyboard(page)
    await shot(page, f"{viewport}-opened-from-the-keyboard")
    for _ in range(30):
        await page.keyboard.press("Tab")
        if not await page.evaluate("document.getElementById('notif-root').contains(document.activeElement)"):
            break
        await expect(page.locator(PANEL)).to_be_visible()
    await expect(page.locator(PANEL)).to_be_hidden()
    await expect(page.locator(BELL)).to_have_attribute("aria-expanded", "false")
    await expect_focus(page, "a Bob Member")
    await shot(page, f"{viewport}-tabbed-out-of-the-panel")

    # Shift+Tab back from the first item (the header's "Archive all read" and "Mark all as read",
    # then the bell) keeps it open; once more, out of it, closes it.
    await open_with_keyboard(page)
    await page.keyboard.press("Shift+Tab")
    await expect_focus(page, "button Archive all read")
    await page.keyboard.press("Shift+Tab")
    await expect_focus(page, "button Mark all as read")
    await page.keyboard.press("Shift+Tab")
    await expect_focus(page, "button#notif-bell Notifications, 2 unread")
    await expect(page.locator(PANEL)).to_be_visible()
    await page.keyboard.press("Shift+Tab")
    await expect(page.locator(PANEL)).to_be_hidden()
    assert await focused(page) != "body"

    # The inbox page: the same, its heading being the page's.
    await page.goto("/notifications")
    await page.get_by_role("button", name="Mark as read: Bring a coat").focus()
    await page.keyboard.press("Enter")
    await expect_focus(page, "button Mark as read: Doors at seven")
    await page.keyboard.press("Enter")
    await expect_focus(page, "h1 Notifications")
    await expect_badge(page, 0)
