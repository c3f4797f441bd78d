"""Pages whose live section is declared in their markup (`hx-sse:connect`) connect it even when the
stream extension's script arrives after htmx's: on a slow or busy connection the scripts come in
any order, and htmx must not look at the page before the extension is there to see that section."""

from __future__ import annotations

import asyncio

import httpx
from playwright.async_api import Route, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.conftest import ContextFactory
from tests.e2e.notifications_helpers import ApiClient, StreamRequests, make_admin, sign_in

LATE_MS = 1_000


async def arrive_late(route: Route) -> None:
    await asyncio.sleep(LATE_MS / 1000)
    await route.continue_()


async def test_live_sections_connect_when_the_stream_extension_arrives_late(
    new_context: ContextFactory, base_url: str, session: AsyncSession
) -> None:
    client = ApiClient(base_url)
    admin = await client.register("late-scripts@example.com", "Lena Late")
    await make_admin(session, admin)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        created = await http.post(
            "/api/v1/events",
            json={
                "title": "Slow Line Social",
                "description": "Doors at seven.",
                "venue": "Hall 2",
                "starts_at": "2031-06-01T19:00:00+00:00",
                "ends_at": "2031-06-01T21:00:00+00:00",
                "timezone": "UTC",
                "capacity": 5,
                "price_cents": 0,
                "currency": "EUR",
            },
            headers={"Authorization": f"Bearer {admin.token}"},
        )
        assert created.status_code == 201, created.text
    event_id = created.json()["id"]

    context = await new_context()
    await sign_in(context, base_url, admin)
    await context.route("**/static/vendor/hx-sse-*.js", arrive_late)
    page = await context.new_page()
    for path, stream in [
        (f"/events/{event_id}", f"/events/{event_id}/deliveries/stream"),
        ("/admin/ops", "/admin/ops/stream"),
        ("/admin/announcements", "/admin/announcements/stream"),
    ]:
        answered = page.expect_response(lambda r, stream=stream: r.url.endswith(stream), timeout=LATE_MS + 5_000)
        async with answered as answer:
            await page.goto(path)
        status = (await answer.value).status
        assert status == 200, f"{path}: its stream answered {status}"


async def test_a_tab_opens_its_inbox_stream_once_when_a_later_script_arrives_late(
    new_context: ContextFactory, base_url: str
) -> None:
    """The preferences page loads push.js after notifications.js. While it is on its way htmx has
    not started (it starts when every deferred script has run), and the tab may already have won
    its stream: the stream must then wait for htmx, not be connected by the tab and again by
    htmx's first pass over the page."""
    person = await ApiClient(base_url).register("late-push@example.com", "Pia Push")
    context = await new_context()
    await sign_in(context, base_url, person)
    await context.route("**/static/js/push.js", arrive_late)
    streams = StreamRequests(context)
    page = await context.new_page()
    await page.goto("/preferences")
    await expect(page.locator("#notif-stream")).to_have_count(1)
    await page.wait_for_timeout(LATE_MS + 1_500)  # any second connection would have been asked for
    assert len(streams.requested) == 1, f"one tab asked for {len(streams.requested)} streams"
    assert len(streams.open()) == 1
