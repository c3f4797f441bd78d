"""The event page offers only what can still be done: no booking form once the event has started."""

from __future__ import annotations

from datetime import timedelta

from tests.api import register
from tests.integration.pages import register_in_browser
from tests.integration.rows import insert_event


async def test_a_past_event_shows_no_booking_form(client, session) -> None:
    organizer, _ = await register(client)
    ended = await insert_event(session, organizer["id"], title="Wine Tasting", starts_in=-timedelta(days=2))
    running = await insert_event(
        session, organizer["id"], title="Long Fair", starts_in=-timedelta(hours=1), duration=timedelta(hours=5)
    )
    await register_in_browser(client, "late-visitor@example.com")
    page = (await client.get(f"/events/{ended.id}")).text
    assert f'action="/events/{ended.id}/book"' not in page
    assert "This event has ended." in page
    page = (await client.get(f"/events/{running.id}")).text
    assert f'action="/events/{running.id}/book"' not in page
    assert "This event has started; booking is closed." in page
