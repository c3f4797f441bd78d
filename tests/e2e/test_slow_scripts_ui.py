"""Pages whose live section is declared in their markup (`hx-sse:connect`) connect it even when the
stream extension's script arrives after htmx's: on a slow or busy connection the scripts come in
any order, and htmx must not look at the page before the extension is there to see that section."""

from __future__ import annotations

import asyncio

import httpx
from playwright.async_api import Route
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.conftest import ContextFactory
from tests.e2e.notifications_helpers import ApiClient, make_admin, sign_in

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
