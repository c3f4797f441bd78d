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


async def test_a_refused_booking_re_renders_the_whole_event_page_reviews_included(client, session) -> None:
    from tests.integration.pages import post_form
    from tests.integration.rows import insert_booking
    from webapp.reviews.models import Review

    organizer, _ = await register(client)
    reviewer, _ = await register(client)
    event = await insert_event(session, organizer["id"], title="Full House", starts_in=timedelta(days=3), capacity=1)
    await insert_booking(session, event, reviewer["id"])  # takes the one seat
    session.add(Review(event_id=event.id, user_id=reviewer["id"], rating=5, comment="Worth every minute."))
    event.seats_booked = 1
    await session.commit()
    await register_in_browser(client, "too-late@example.com")
    page = (await client.get(f"/events/{event.id}")).text
    assert "Worth every minute." in page
    refused = await post_form(client, f"/events/{event.id}/book", {"seats": "2", "booking_token": "t-1"})
    assert refused.status_code == 409, refused.text
    assert "Worth every minute." in refused.text  # the rest of the page is still there
    assert 'role="alert"' in refused.text
