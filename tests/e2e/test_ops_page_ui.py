"""The operations page in a real browser: an admin opens /admin/ops, then streams open and
notifications are created elsewhere, and the connection count and notifications per minute change
on the page without a reload (its own SSE stream). It also holds up in dark mode at 390 px."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack

import httpx
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.conftest import ContextFactory, Screenshots
from tests.e2e.notifications_helpers import ApiClient, make_admin, sign_in
from tests.reliability.sse import open_stream

JSON_STREAMS = '[data-transport="sse_json"]'
PER_MINUTE = '[data-figure="notifications"] [data-value]'


async def number(page: Page, selector: str) -> float:
    return float((await page.locator(selector).inner_text()).replace(",", ""))


async def test_an_admin_watches_connections_and_notifications_change_live(
    new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    client = ApiClient(base_url)
    admin = await client.register("ops@example.com", "Olga Ops")
    await make_admin(session, admin)
    reader = await client.register("reader@example.com", "Rita Reader")

    context = await new_context()
    await sign_in(context, base_url, admin)
    page = await context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    async with page.expect_response(lambda r: r.url.endswith("/admin/ops/stream")) as connected:
        await page.goto("/")
        await page.get_by_role("link", name="Operations").click()
    assert (await connected.value).status == 200
    await expect(page.locator("h1")).to_have_text("Operations")
    # The page is where an admin announces to everyone: the form, and the reports it leaves.
    await expect(page.get_by_role("link", name="Announce to everyone")).to_have_attribute("href", "#announce-heading")
    await expect(page.get_by_role("heading", name="Announce to everyone")).to_be_visible()
    await expect(page.get_by_role("button", name="Send to everyone")).to_be_visible()
    await page.evaluate("window.__samePage = true")
    # The admin's own bell stream counts among the page streams once a sample has it.
    await expect(page.locator('[data-transport="sse_html"]')).not_to_have_text("0")
    before = int(await number(page, JSON_STREAMS))
    per_minute = await number(page, PER_MINUTE)
    await shot(page, "before")

    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http, AsyncExitStack() as streams:
        for _ in range(2):
            stream = await streams.enter_async_context(open_stream(http, reader.token))
            assert stream.status == 200
        await expect(page.locator(JSON_STREAMS)).to_have_text(str(before + 2))
        await client.announce(admin, "Maintenance window", "Tonight from ten.")  # to everyone: 2 people
        await expect(page.locator(PER_MINUTE)).not_to_have_text(re.compile(rf"^{per_minute:,.0f}$"))
        assert await number(page, PER_MINUTE) >= per_minute + 2
        await shot(page, "two-streams-and-an-announcement")
    await expect(page.locator(JSON_STREAMS)).to_have_text(str(before))  # both closed
    assert await page.evaluate("window.__samePage === true"), "the page was reloaded"

    line = page.locator('[data-figure="connections"] svg.sparkline')
    await expect(line).to_have_attribute("role", "img")
    await expect(line).to_have_attribute("aria-label", re.compile(r"^Open connections, last 60 minutes .*now \d+$"))
    assert not violations, violations

    # Dark mode on a phone: nothing wider than the screen, the figures still there.
    phone = await new_context(color_scheme="dark", viewport={"width": 390, "height": 844})
    await sign_in(phone, base_url, admin)
    small = await phone.new_page()
    await small.goto("/admin/ops")
    await expect(small.locator('[data-figure="notifications"]')).to_be_visible()
    assert await small.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    background = await small.evaluate("getComputedStyle(document.querySelector('.ops-card')).backgroundColor")
    assert background != "rgb(255, 255, 255)", "the cards follow dark mode"
    await shot(small, "dark-phone")
