"""The bell against the best inboxes, in a real Chromium at 390×844 and 1280×800: archiving (one
item, all read ones) from the dropdown and the inbox page, with every count and every other tab
following; the dropdown's unread count, its "N more unread" link and items moving to "Earlier" the
moment they are read; and the inbox page scrolling on with its filters kept in the URL.

Notifications are written straight into the database (the UI is not what makes them here);
screenshots go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.conftest import ContextFactory, Screenshots
from tests.e2e.layout_helpers import VIEWPORT_NAMES, phone_or_desktop
from tests.e2e.notifications_helpers import (
    ApiClient,
    Person,
    expect_badge,
    item,
    open_app,
    open_dropdown,
    seed_notifications,
    sign_in,
)

UNREAD = re.compile(r"\bis-unread\b")


async def bob(base_url: str) -> tuple[ApiClient, Person]:
    client = ApiClient(base_url)
    return client, await client.register("bob@example.com", "Bob Member")


async def scroll_to_the_end(page: Page) -> None:
    await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_archiving_leaves_the_dropdown_every_count_and_every_tab_until_brought_back(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    client, person = await bob(base_url)
    old_a, old_b, first, second, third = await seed_notifications(
        session,
        person,
        {"type": "general", "title": "Pier 7 has a new entrance", "read": True},
        {"type": "event_reminder", "title": "Harbour Lights was yesterday", "read": True},
        {"type": "booking_confirmed", "title": "Seats confirmed: Harbour Lights"},
        {"type": "event_updated", "title": "Harbour Lights moved to 20:00"},
        {"type": "general", "title": "Doors open at seven"},
    )
    context = await phone_or_desktop(new_context, viewport)
    await sign_in(context, base_url, person)
    page = await open_app(context, stream=True)
    other = await open_app(context, "/notifications")
    await expect_badge(page, 3)
    other_list = other.locator("#inbox-list")
    await expect(other_list.locator("[data-notification-id]")).to_have_count(5)

    # One unread item, archived from the dropdown: gone from it, from the count, from the other tab.
    panel = await open_dropdown(page)
    await expect(panel.locator("[data-panel-unread-count]")).to_have_text("3 unread")
    await item(panel, third).get_by_role("button", name="Archive: Doors open at seven").click()
    await expect(item(panel, third)).to_have_count(0)
    await expect_badge(page, 2)
    await expect(panel.locator("[data-panel-unread-count]")).to_have_text("2 unread")
    await expect_badge(other, 2)
    await expect(item(other_list, third)).to_have_count(0)
    await shot(page, f"{viewport}-dropdown-after-archiving-one")

    # "Archive all read": the two read items leave both views; the unread ones stay.
    await panel.get_by_role("button", name="Archive all read").click()
    for gone in (old_a, old_b):
        await expect(item(panel, gone)).to_have_count(0)
        await expect(item(other_list, gone)).to_have_count(0)
    await expect(panel.locator('[data-section="earlier"]')).to_be_hidden()
    await expect(panel.locator('[data-section="unread"] [data-notification-id]')).to_have_count(2)
    await expect_badge(page, 2)
    await shot(page, f"{viewport}-dropdown-after-archiving-all-read")
    assert await client.unread_count(person) == 2
    archived = await client.notifications(person, status="archived")
    assert {n["id"] for n in archived["items"]} == {third, old_a, old_b}

    # The inbox page's Archived filter shows them; bringing the unread one back counts it again.
    await other.get_by_label("Show").select_option("archived")
    await other.wait_for_url(re.compile(r"/notifications\?status=archived&type=$"))
    archived_list = other.locator("#inbox-list")
    await expect(archived_list.locator("[data-notification-id]")).to_have_count(3)
    await shot(other, f"{viewport}-inbox-archived")
    await item(archived_list, third).get_by_role("button", name="Unarchive: Doors open at seven").click()
    await expect(item(archived_list, third)).to_have_count(0)
    await expect_badge(other, 3)
    await expect_badge(page, 3)
    await expect(item(page.locator("#notif-panel"), third)).to_have_count(1)  # the open dropdown refetched
    await other.reload()
    await expect(other.get_by_label("Show")).to_have_value("archived")
    await expect(archived_list.locator("[data-notification-id]")).to_have_count(2)

    # From the inbox page itself: one item, then everything read.
    await other.get_by_label("Show").select_option("all")
    await other.wait_for_url(re.compile(r"status=all&type=$"))
    inbox_list = other.locator("#inbox-list")
    await expect(inbox_list.locator("[data-notification-id]")).to_have_count(3)
    await item(inbox_list, first).get_by_role("button", name="Mark as read: Seats confirmed: Harbour Lights").click()
    await expect(item(inbox_list, first)).not_to_have_class(UNREAD)
    await other.get_by_role("button", name="Archive all read").click()
    await expect(item(inbox_list, first)).to_have_count(0)
    await expect(inbox_list.locator("[data-notification-id]")).to_have_count(2)
    await expect(other).to_have_url(re.compile(r"status=all&type=$"))  # still where it was
    await item(inbox_list, second).get_by_role("button", name="Archive: Harbour Lights moved to 20:00").click()
    await expect(item(inbox_list, second)).to_have_count(0)
    await expect_badge(other, 1)
    await expect_badge(page, 1)
    await expect(item(page.locator("#notif-panel"), second)).to_have_count(0)
    assert await client.unread_count(person) == 1
    await shot(other, f"{viewport}-inbox-after-archiving")
    await item(inbox_list, third).get_by_role("button", name="Archive: Doors open at seven").click()
    await expect(inbox_list).to_have_text("Nothing here.")  # the last one gone, as a reload would say
    await expect_badge(other, 0)


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_the_dropdown_counts_unread_links_to_the_rest_and_moves_a_read_item_to_earlier(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    _, person = await bob(base_url)
    ids = await seed_notifications(
        session,
        person,
        {"type": "general", "title": "Read long ago", "read": True},
        *({"type": "general", "title": f"Unread number {n}"} for n in range(1, 14)),
    )
    newest = ids[-1]
    context = await phone_or_desktop(new_context, viewport)
    await sign_in(context, base_url, person)
    page = await open_app(context, stream=True)
    await expect_badge(page, 13)

    panel = await open_dropdown(page)
    unread = panel.locator('[data-section="unread"]')
    earlier = panel.locator('[data-section="earlier"]')
    await expect(unread.locator("[data-notification-id]")).to_have_count(10)
    await expect(panel.locator("[data-panel-unread-count]")).to_have_text("13 unread")
    more = panel.get_by_role("link", name="3 more unread")
    await expect(more).to_be_visible()
    await expect(earlier).to_be_hidden()  # the read one is older than the ten shown
    await shot(page, f"{viewport}-dropdown-with-more-unread")

    # Marked read: at once in "Earlier", the counts follow, nothing is reloaded.
    await item(unread, newest).get_by_role("button", name="Mark as read: Unread number 13").click()
    await expect(item(earlier, newest)).to_have_count(1)
    await expect(earlier).to_be_visible()
    await expect(item(unread, newest)).to_have_count(0)
    await expect(panel.locator("[data-panel-unread-count]")).to_have_text("12 unread")
    await expect(panel.get_by_role("link", name="3 more unread")).to_be_visible()
    await expect_badge(page, 12)
    await shot(page, f"{viewport}-dropdown-item-moved-to-earlier")
    # And back, marked unread from "Earlier".
    await item(earlier, newest).get_by_role("button", name="Mark as unread: Unread number 13").click()
    await expect(item(unread, newest)).to_have_count(1)
    await expect(unread.locator("[data-notification-id]").first).to_have_attribute("data-notification-id", str(newest))
    await expect(earlier).to_be_hidden()
    await expect(panel.locator("[data-panel-unread-count]")).to_have_text("13 unread")

    await panel.get_by_role("link", name="3 more unread").click()
    await page.wait_for_url(re.compile(r"/notifications\?status=unread$"))
    await expect(page.get_by_label("Show")).to_have_value("unread")
    await expect(page.locator("#inbox-list [data-notification-id]")).to_have_count(13)
    await shot(page, f"{viewport}-inbox-unread-from-more-link")


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_the_inbox_scrolls_on_and_keeps_its_filters_across_reload_and_back(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    _, person = await bob(base_url)
    await seed_notifications(
        session,
        person,
        *({"type": "general", "title": f"Announcement {n}"} for n in range(1, 46)),
        *({"type": "general", "title": f"Read announcement {n}", "read": True} for n in range(1, 4)),
        *({"type": "event_reminder", "title": f"Reminder {n}"} for n in range(1, 6)),
    )
    context = await phone_or_desktop(new_context, viewport)
    await sign_in(context, base_url, person)
    page = await open_app(context, "/notifications", stream=True)
    listed = page.locator("#inbox-list [data-notification-id]")
    await expect(listed).to_have_count(20)
    await expect(page.get_by_role("button", name=re.compile("^(Newest|Older)$"))).to_have_count(0)

    await page.get_by_label("Show").select_option("unread")
    await page.wait_for_url(re.compile(r"/notifications\?status=unread&type=$"))
    await page.get_by_label("Type").select_option("general")
    await page.wait_for_url(re.compile(r"/notifications\?status=unread&type=general$"))
    filtered_url = page.url
    await expect(listed).to_have_count(20)
    # Without script, the placeholder for the next page is a plain link to it.
    await expect(page.locator(".inbox-more a")).to_have_attribute(
        "href", re.compile(r"^/notifications\?status=unread&type=general&cursor=\d+$")
    )
    await scroll_to_the_end(page)
    await expect(listed).to_have_count(40)
    await scroll_to_the_end(page)
    await expect(listed).to_have_count(45)
    await expect(page.locator(".inbox-more")).to_have_count(0)  # the last page has no placeholder
    titles = await page.locator("#inbox-list .notif-title").all_text_contents()
    assert titles == [f"Announcement {n}" for n in range(45, 0, -1)], "pages repeat or skip items"
    await shot(page, f"{viewport}-inbox-scrolled-to-the-end")

    await page.reload()
    assert page.url == filtered_url
    await expect(page.get_by_label("Show")).to_have_value("unread")
    await expect(page.get_by_label("Type")).to_have_value("general")
    await expect(listed).to_have_count(20)
    await scroll_to_the_end(page)
    await expect(listed).to_have_count(40)
    assert set(
        await page.locator("#inbox-list [data-type]").evaluate_all("items => items.map(i => i.dataset.type)")
    ) == {"general"}
    assert await page.locator("#inbox-list .notif-item:not(.is-unread)").count() == 0

    await page.go_back()
    await page.wait_for_url(re.compile(r"/notifications\?status=unread&type=$"))
    await expect(page.get_by_label("Show")).to_have_value("unread")
    await expect(page.get_by_label("Type")).to_have_value("")
    await expect(listed).to_have_count(20)
    await page.go_forward()
    await page.wait_for_url(filtered_url)
    await expect(page.get_by_label("Type")).to_have_value("general")
