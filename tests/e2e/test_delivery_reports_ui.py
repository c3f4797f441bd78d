"""Delivery reports in a real Chromium. The organizer watches an event's report fill in live,
without reloading: the update reaches the attendees' open pages (delivered), one of them opens the
bell (seen) and marks it read (read); then the same page at phone width in dark mode. An admin
announces to everyone from the web form and lands on its live report."""

from __future__ import annotations

import asyncio
import re

import httpx
from playwright.async_api import Dialog, Locator, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.conftest import ContextFactory, Screenshots
from tests.e2e.notifications_helpers import (
    ApiClient,
    Person,
    expect_badge,
    make_admin,
    open_app,
    open_dropdown,
    sign_in,
)

LIVE_MS = 6_000  # the job, the flush (1 s) and the report's re-count (1 s), with room on a busy machine


def number(report: Locator, name: str) -> Locator:
    return report.locator(f'[data-count="{name}"]')


async def open_event_page(page: Page, event_id: int) -> None:
    """The event page, returned once its report stream has answered (subscribed and counting)."""
    async with page.expect_response(lambda r: r.url.endswith(f"/events/{event_id}/deliveries/stream")) as answer:
        await page.goto(f"/events/{event_id}")
    assert (await answer.value).status == 200


async def test_an_organizer_sees_the_update_report_fill_in_live(
    new_context: ContextFactory, shot: Screenshots, base_url: str
) -> None:
    client = ApiClient(base_url)
    organizer, *attendees = await asyncio.gather(
        client.register("olga-reports@example.com", "Olga Organizer"),
        *(client.register(f"guest{i}-reports@example.com", f"Guest {i}") for i in range(2)),
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        start = "2031-05-01T19:00:00+00:00"
        created = await http.post(
            "/api/v1/events",
            json={
                "title": "Jazz on the Pier",
                "description": "Bring a coat.",
                "venue": "Pier 7",
                "starts_at": start,
                "ends_at": "2031-05-01T22:00:00+00:00",
                "timezone": "Europe/Lisbon",
                "capacity": 20,
                "price_cents": 0,
                "currency": "EUR",
            },
            headers={"Authorization": f"Bearer {organizer.token}"},
        )
        event_id = created.json()["id"]
        for attendee in attendees:
            booked = await http.post(
                f"/api/v1/events/{event_id}/bookings",
                json={"seats": 1},
                headers={"Authorization": f"Bearer {attendee.token}"},
            )
            assert booked.status_code == 201, booked.text

    async def organizer_page() -> Page:
        context = await new_context()
        await sign_in(context, base_url, organizer)
        page = await context.new_page()
        await open_event_page(page, event_id)
        return page

    async def attendee_page(attendee: Person) -> Page:
        context = await new_context()
        await sign_in(context, base_url, attendee)
        return await open_app(context, stream=True)

    page, *attendee_pages = await asyncio.gather(organizer_page(), *(attendee_page(a) for a in attendees))
    section = page.locator("section.delivery-reports")
    await expect(section.get_by_role("heading", name="Delivery reports")).to_be_visible()
    await expect(section).to_contain_text("No delivery reports yet")
    await page.evaluate("window.__samePage = true")

    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        changed = await http.patch(
            f"/api/v1/events/{event_id}",
            json={"venue": "Pier 9"},
            headers={"Authorization": f"Bearer {organizer.token}"},
        )
        assert changed.status_code == 200, changed.text

    report = section.locator("article.report")
    await expect(report).to_have_count(1, timeout=LIVE_MS)
    await expect(report.locator(".report-kind")).to_have_text("Update")
    await expect(report).to_contain_text("Changed: venue")
    await expect(number(report, "recipients")).to_have_text("2", timeout=LIVE_MS)
    await expect(number(report, "delivered")).to_have_text("2", timeout=LIVE_MS)
    await expect(number(report, "seen")).to_have_text("0")
    await expect(number(report, "unseen")).to_have_text("2")

    reader = attendee_pages[0]
    await expect_badge(reader, 2)  # the update, and the booking's confirmation
    panel = await open_dropdown(reader)
    await expect(number(report, "seen")).to_have_text("1", timeout=LIVE_MS)
    await expect(number(report, "unseen")).to_have_text("1")
    await panel.get_by_role("button", name="Mark all as read").click()
    await expect_badge(reader, 0)
    await expect(number(report, "read")).to_have_text("1", timeout=LIVE_MS)
    await expect(number(report, "delivered")).to_have_text("2")
    assert await page.evaluate("window.__samePage === true"), "the organizer's page reloaded"
    await shot(page, "report-read")

    # The same page at phone width, in dark mode: nothing wider than the screen, dark colours.
    light = await page.evaluate("getComputedStyle(document.querySelector('.report')).backgroundColor")
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.emulate_media(color_scheme="dark")
    await report.scroll_into_view_if_needed()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    box = await report.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    dark = await page.evaluate("getComputedStyle(document.querySelector('.report')).backgroundColor")
    assert dark != light, "the report follows the dark colour scheme"
    await shot(page, "report-phone-dark")


async def test_an_admin_announces_to_everyone_from_the_web_form_and_watches_its_report(
    new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    client = ApiClient(base_url)
    admin, member = await asyncio.gather(
        client.register("ada-reports@example.com", "Ada Admin"), client.register("ben-reports@example.com", "Ben")
    )
    await make_admin(session, admin)
    member_context = await new_context()
    await sign_in(member_context, base_url, member)
    member_page = await open_app(member_context, stream=True)

    context = await new_context()
    await sign_in(context, base_url, admin)
    page = await context.new_page()
    await page.goto("/")
    await page.get_by_role("link", name="Announce").click()
    await expect(page.get_by_role("heading", name="Announce to everyone")).to_be_visible()
    await page.get_by_label("Title").fill("Maintenance at noon")
    await page.get_by_label("Message").fill("The site pauses for ten minutes.")
    asked: list[str] = []

    def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        asyncio.ensure_future(dialog.accept())

    page.once("dialog", confirm)
    async with page.expect_response(lambda r: "/admin/announcements/stream" in r.url):
        await page.get_by_role("button", name="Send to everyone").click()
    assert asked == ["Send this announcement to everyone?"]
    await expect(page).to_have_url(re.compile(r"/admin/announcements$"))
    await expect(page.get_by_role("status").filter(has_text="Announcement sent")).to_contain_text(
        "Announcement sent to everyone: “Maintenance at noon”"
    )

    report = page.locator("#announcement-reports article.report")
    await expect(report).to_have_count(1)
    await expect(number(report, "recipients")).to_have_text("2", timeout=LIVE_MS)
    # Ben's open page, surely; Ada's own only if her new page's stream opened before the fan-out.
    await expect(number(report, "delivered")).to_have_text(re.compile(r"^[12]$"), timeout=LIVE_MS)
    await expect_badge(member_page, 1)
    await open_dropdown(member_page)
    await expect(number(report, "seen")).to_have_text("1", timeout=LIVE_MS)
    await shot(page, "announcement-report")

    await page.reload()  # sends nothing again
    await expect(page.locator("#announcement-reports article.report")).to_have_count(1)
    assert await client.unread_count(member) <= 1
