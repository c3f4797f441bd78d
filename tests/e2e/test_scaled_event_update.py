"""Scaled mode in a real browser: a web process, a separate `dramatiq jobs` worker, Redis. The
organizer moves an event; an attendee's open page shows the update, old → new, within 2 s."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
from playwright.async_api import expect

from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET
from tests.services import LiveServer, LiveWorker, scaled_env
from webapp.auth.middleware import ACCESS_COOKIE
from webapp.db import utcnow


async def test_an_attendee_sees_the_moved_time_within_two_seconds(database_url, new_context, shot, tmp_path):
    env = scaled_env(database_url, TEST_SECRET)
    web = LiveServer(env=env, log_path=tmp_path / "web.log")
    worker = LiveWorker(env=env, log_path=tmp_path / "worker.log")
    web.start()
    worker.start()
    try:
        async with httpx.AsyncClient(base_url=web.url, timeout=30) as http:

            async def register(name: str) -> str:
                response = await http.post(
                    "/api/v1/auth/register",
                    json={
                        "email": f"{name}-{time.monotonic_ns()}@example.com",
                        "password": DEFAULT_PASSWORD,
                        "name": name,
                        "timezone": "Europe/Berlin",
                    },
                )
                assert response.status_code == 201, response.text
                return response.json()["token"]

            organizer, attendee = await register("Organizer"), await register("Attendee")
            start = utcnow().replace(microsecond=0, second=0) + timedelta(days=4)
            event = (
                await http.post(
                    "/api/v1/events",
                    json={
                        "title": "Jazz on the Roof",
                        "description": "",
                        "venue": "Skyline",
                        "timezone": "Europe/Berlin",
                        "starts_at": start.isoformat(),
                        "ends_at": (start + timedelta(hours=2)).isoformat(),
                        "capacity": 10,
                        "price_cents": 0,
                        "currency": "EUR",
                    },
                    headers={"Authorization": f"Bearer {organizer}"},
                )
            ).json()
            booked = await http.post(
                f"/api/v1/events/{event['id']}/bookings",
                json={"seats": 1},
                headers={"Authorization": f"Bearer {attendee}"},
            )
            assert booked.status_code == 201

            context = await new_context(base_url=web.url)
            await context.add_cookies([{"name": ACCESS_COOKIE, "value": attendee, "url": web.url}])
            page = await context.new_page()
            await page.goto("/bookings")
            await expect(page.locator("#notif-root[data-stream-leader=true]")).to_have_count(1)
            await expect(page.locator("#notif-badge")).to_have_text("1")  # the booking confirmation
            await shot(page, "before-the-move")

            moved = start + timedelta(days=1, hours=2)
            sent = time.monotonic()
            response = await http.patch(
                f"/api/v1/events/{event['id']}",
                json={"starts_at": moved.isoformat(), "ends_at": (moved + timedelta(hours=2)).isoformat()},
                headers={"Authorization": f"Bearer {organizer}"},
            )
            assert response.status_code == 200
            toast = page.locator(".toast", has_text="Changed: Jazz on the Roof")
            await expect(toast).to_be_visible(timeout=2000)
            latency = time.monotonic() - sent
            print(f"\nscaled mode: event update visible on the attendee's page after {latency * 1000:.0f} ms")
            await expect(page.locator("#notif-badge")).to_have_text("2")
            await page.click("#notif-bell")
            item = page.locator("#notif-panel .notif-event_updated")
            await expect(item).to_contain_text("Starts:")
            await expect(item).to_contain_text("→")
            await shot(page, "after-the-move")
            assert latency < 2.0
    finally:
        worker.stop()
        web.stop()
