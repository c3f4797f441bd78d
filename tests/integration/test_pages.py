"""Every page renders for a signed-in user, content is escaped, and bad input gets a friendly 4xx."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.api import book, create_event, event_payload, inbox, register
from tests.integration.pages import post_form, register_in_browser
from webapp.auth.models import User
from webapp.bookings.models import Booking, BookingAttendee
from webapp.db import utcnow
from webapp.events.models import Event


async def browser_user(client, email: str) -> dict:
    await register_in_browser(client, email, name="Page Tester", timezone="America/New_York")
    return (await client.get("/api/v1/me")).json()


async def test_every_page_renders_for_a_signed_in_user(client, app):
    from litestar.testing import AsyncTestClient

    organizer, org_token = await register(client, name="Org")
    event = await create_event(client, org_token, title="Page Event")
    me = await browser_user(client, "pages@example.com")
    booking_response = await client.post(
        f"/api/v1/events/{event['id']}/bookings",
        json={"seats": 1},
        headers={"x-csrftoken": client.cookies["tidings_csrf"]},
    )
    booking = booking_response.json()
    group = (
        await client.post(
            "/api/v1/groups", json={"name": "Crew"}, headers={"x-csrftoken": client.cookies["tidings_csrf"]}
        )
    ).json()
    for path, expected in [
        ("/", "Page Event"),
        (f"/events/{event['id']}", "Book"),
        ("/events/new", "Create an event"),
        ("/bookings", "Page Event"),
        (f"/bookings/{booking['id']}/pay", "Card number"),
        ("/groups", "Crew"),
        (f"/groups/{group['id']}", "Invite someone"),
        ("/organizer", "Your events"),
        ("/profile", "America/New_York"),
        ("/login", "Log in"),
        ("/register", "Create your account"),
        ("/events/_list?q=page", "Page Event"),
    ]:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert expected in response.text, path
    assert me["timezone"] == "America/New_York"
    # The viewer's own time zone is shown beside the event's when they differ.
    detail = await client.get(f"/events/{event['id']}")
    assert "your time:" in detail.text
    async with AsyncTestClient(app, base_url="http://127.0.0.1:8000") as organizer_browser:
        organizer_browser.follow_redirects = False
        login = await post_form(
            organizer_browser, "/login", {"email": organizer["email"], "password": "correct horse battery"}
        )
        assert login.status_code == 302
        attendees = await organizer_browser.get(f"/organizer/events/{event['id']}")
        assert attendees.status_code == 200 and "Page Tester" in attendees.text
        edit = await organizer_browser.get(f"/events/{event['id']}/edit")
        assert edit.status_code == 200 and 'value="Page Event"' in edit.text


async def test_search_finds_by_title_venue_and_description_and_escapes_like_wildcards(client):
    _, token = await register(client)
    await create_event(client, token, title="Jazz Night", venue="Blue Cellar", description="Trio")
    await create_event(client, token, title="Chess Club", venue="Library", description="100% fun")
    assert "Jazz Night" in (await client.get("/events/_list?q=cellar")).text
    assert "Chess Club" not in (await client.get("/events/_list?q=cellar")).text
    assert "Chess Club" in (await client.get("/events/_list?q=100%25")).text
    assert "Jazz Night" not in (await client.get("/events/_list?q=%25")).text


async def test_titles_and_bodies_are_shown_as_text_never_as_markup(client):
    _, token = await register(client)
    hostile = "<img src=x onerror=alert(1)>"
    event = await create_event(
        client, token, title=hostile, description='<div hx-get="/logout" hx-trigger="load">x</div>'
    )
    for path in ("/", f"/events/{event['id']}"):
        text = (await client.get(path)).text
        assert hostile not in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text
        assert 'hx-get="/logout"' not in text


async def test_another_users_booking_and_group_pages_are_404_pages(client):
    _, org_token = await register(client)
    event = await create_event(client, org_token)
    _, other_token = await register(client)
    booking = (await book(client, other_token, event["id"])).json()
    group = (
        await client.post(
            "/api/v1/groups", json={"name": "Private"}, headers={"Authorization": f"Bearer {other_token}"}
        )
    ).json()
    await browser_user(client, "snoop@example.com")
    for path in (
        f"/bookings/{booking['id']}/pay",
        f"/groups/{group['id']}",
        f"/organizer/events/{event['id']}",
        f"/events/{event['id']}/edit",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "Traceback" not in response.text and "Back to events" in response.text
    cancel = await post_form(client, f"/bookings/{booking['id']}/cancel", {})
    assert cancel.status_code == 404
    assert (await client.get("/events/999999")).status_code == 404


async def test_booking_and_paying_through_the_pages(client, session):
    _, org_token = await register(client)
    event = await create_event(client, org_token, capacity=3, price_cents=1250)
    await browser_user(client, "payer@example.com")
    too_many = await post_form(client, f"/events/{event['id']}/book", {"seats": "4"})
    assert too_many.status_code == 409 and "Not enough seats left" in too_many.text
    not_a_number = await post_form(client, f"/events/{event['id']}/book", {"seats": "lots"})
    assert not_a_number.status_code == 422
    booked = await post_form(client, f"/events/{event['id']}/book", {"seats": "2"})
    assert booked.status_code == 302
    pay_path = booked.headers["location"]
    declined = await post_form(client, pay_path, {"card_number": "4000 0000 0000 0002"})
    assert declined.status_code == 402 and "Your card was declined." in declined.text
    invalid = await post_form(client, pay_path, {"card_number": "12"})
    assert invalid.status_code == 422 and "valid card number" in invalid.text
    paid = await post_form(client, pay_path, {"card_number": "4242 4242 4242 4242"})
    assert paid.status_code == 302 and paid.headers["location"] == "/bookings"
    landed = await client.get("/bookings")
    assert "Payment received: you&#39;re booked for" in landed.text
    status = await session.scalar(select(Booking.status))
    assert status == "confirmed"


async def test_event_form_keeps_values_and_shows_errors_inline(client):
    await browser_user(client, "former@example.com")
    form = {
        "title": "Kept title",
        "description": "",
        "venue": "Hall",
        "starts_at": (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
        "timezone": "Europe/Berlin",
        "capacity": "ten",
        "price": "12.345",
        "currency": "EUR",
    }
    response = await post_form(client, "/events/new", form)
    assert response.status_code == 422
    assert 'value="Kept title"' in response.text
    assert "Enter a whole number of seats." in response.text
    assert "Enter a price such as 25.00." in response.text
    form.update(capacity="10", price="12.50")
    response = await post_form(client, "/events/new", form)
    assert response.status_code == 422 and "The event must end after it starts." in response.text
    form["ends_at"] = (utcnow() + timedelta(days=3, hours=2)).strftime("%Y-%m-%dT%H:%M")
    created = await post_form(client, "/events/new", form)
    assert created.status_code == 302 and created.headers["location"].startswith("/events/")


async def test_review_form_for_an_attendee_of_a_past_event(client, session):
    organizer, _ = await register(client)
    me = await browser_user(client, "reviewer@example.com")
    past = Event(
        organizer_id=organizer["id"],
        title="Past gig",
        venue="Hall",
        description="",
        timezone="UTC",
        starts_at=utcnow() - timedelta(days=2),
        ends_at=utcnow() - timedelta(days=2, hours=-2),
        capacity=5,
        seats_booked=1,
        price_cents=0,
        currency="EUR",
    )
    session.add(past)
    await session.flush()
    session.add(
        Booking(
            event_id=past.id,
            user_id=me["id"],
            seats=1,
            amount_cents=0,
            currency="EUR",
            status="confirmed",
            attendees=[BookingAttendee(user_id=me["id"])],
        )
    )
    await session.commit()
    assert "Write a review" in (await client.get(f"/events/{past.id}")).text
    bad = await post_form(client, f"/events/{past.id}/review", {"rating": "9", "comment": "hm"})
    assert bad.status_code == 422 and "Give a rating from 1 to 5." in bad.text
    ok = await post_form(client, f"/events/{past.id}/review", {"rating": "4", "comment": "Great <b>show</b>"})
    assert ok.status_code == 302
    page = (await client.get(f"/events/{past.id}")).text
    assert "Great &lt;b&gt;show&lt;/b&gt;" in page and "Write a review" not in page
    again = await client.get(f"/events/{past.id}/review")
    assert again.status_code == 409


async def test_group_invitation_is_answered_in_place_with_htmx(client):
    _, owner_token = await register(client)
    me = await browser_user(client, "invitee@example.com")
    headers = {"Authorization": f"Bearer {owner_token}"}
    group = (await client.post("/api/v1/groups", json={"name": "Board games"}, headers=headers)).json()
    invitation = (
        await client.post(f"/api/v1/groups/{group['id']}/invitations", json={"email": me["email"]}, headers=headers)
    ).json()
    page = await client.get("/groups")
    assert "Board games" in page.text and f"/invitations/{invitation['id']}/accept" in page.text
    fragment = await client.post(
        f"/invitations/{invitation['id']}/accept",
        headers={"HX-Request": "true", "x-csrftoken": client.cookies["tidings_csrf"]},
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "accepted" in fragment.text
    assert "Board games" in (await client.get(f"/groups/{group['id']}")).text


async def test_profile_update_validates_the_time_zone(client, session):
    await browser_user(client, "tz@example.com")
    bad = await post_form(client, "/profile", {"name": "New Name", "timezone": "Nowhere/Land"})
    assert bad.status_code == 422 and "Choose a time zone" in bad.text
    ok = await post_form(client, "/profile", {"name": "New Name", "timezone": "Asia/Tokyo"})
    assert ok.status_code == 200 and "Profile saved." in ok.text
    user = await session.scalar(select(User).where(User.email == "tz@example.com"))
    assert (user.name, user.timezone) == ("New Name", "Asia/Tokyo")


async def test_an_organizer_announces_from_the_event_page(client):
    from tests.api import pay

    _, attendee_token = await register(client)
    _, stranger_token = await register(client)
    stranger_event = await create_event(client, stranger_token)
    await browser_user(client, "announcer@example.com")
    csrf = {"x-csrftoken": client.cookies["tidings_csrf"]}
    event = (await client.post("/api/v1/events", json=event_payload(), headers=csrf)).json()
    booking = (await book(client, attendee_token, event["id"])).json()
    await pay(client, attendee_token, booking["id"])
    empty = await post_form(client, f"/organizer/events/{event['id']}/announce", {"title": "", "body": "x"})
    assert empty.status_code == 422 and "A title of 1 to 200 characters is required." in empty.text
    sent = await post_form(
        client, f"/organizer/events/{event['id']}/announce", {"title": "Bring an umbrella", "body": ""}
    )
    # POST-redirect-GET: the result is a page of its own, and loading it again sends nothing again.
    assert sent.status_code == 303, sent.text
    landing = sent.headers["location"]
    assert landing == f"/organizer/events/{event['id']}"
    page = await client.get(landing)
    assert page.status_code == 200 and "“Bring an umbrella” is on its way to 1 attendee." in page.text
    again = await client.get(landing)  # the flash message is shown once
    assert again.status_code == 200 and "on its way" not in again.text
    received = await inbox(client, attendee_token, query="type=general")
    assert [n["title"] for n in received["items"]] == ["Bring an umbrella"]
    other = await post_form(client, f"/organizer/events/{stranger_event['id']}/announce", {"title": "x"})
    assert other.status_code == 404
