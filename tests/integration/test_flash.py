"""Flash messages (webapp/flash.py): set by a form's redirect, shown by the next full page of the
same user only, and deleted by that answer whether shown or refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api import create_event, register
from tests.integration.pages import post_form, register_in_browser
from tests.integration.rows import insert_booking, insert_event
from webapp.auth.middleware import ACCESS_COOKIE
from webapp.flash import FLASH_COOKIE


def flash_deleted(answer) -> bool:
    return any(
        value.startswith(f"{FLASH_COOKIE}=") and "Max-Age=0" in value for value in answer.headers.get_list("set-cookie")
    )


async def test_a_flash_is_shown_by_the_next_page_once_and_deleted(client):
    _, organizer = await register(client)
    event = await create_event(client, organizer, title="Harbour Lights", price_cents=0)
    await register_in_browser(client, "flash@example.com", name="Flash Tester", timezone="UTC")
    booked = await post_form(client, f"/events/{event['id']}/book", {"seats": "1"})
    assert booked.status_code == 302 and booked.headers["location"] == "/bookings"
    assert any(v.startswith(f"{FLASH_COOKIE}=") for v in booked.headers.get_list("set-cookie"))
    fragment = await client.get("/events/_list")  # not a full page: leaves it for the page
    assert not flash_deleted(fragment)
    page = await client.get("/bookings")
    assert "You&#39;re booked for Harbour Lights: 1 seat." in page.text and 'role="status" data-flash' in page.text
    assert flash_deleted(page)
    again = await client.get("/bookings")
    assert "booked for" not in again.text and not flash_deleted(again)


async def test_a_forged_or_foreign_flash_is_refused_and_deleted(client):
    await register_in_browser(client, "flash@example.com", name="Flash Tester", timezone="UTC")
    for forged in ("eyJ1IjpudWxsLCJtIjoiaGkifQ.00", "not even base64", "%C3%A9.%C3%A9"):
        client.cookies.set(FLASH_COOKIE, forged)
        page = await client.get("/bookings")
        assert page.status_code == 200 and "data-flash" not in page.text, forged
        assert flash_deleted(page), forged


async def test_a_flash_is_shown_to_its_own_user_only(client):
    _, organizer = await register(client)
    _, someone = await register(client)
    event = await create_event(client, organizer, title="Harbour Lights", price_cents=0)
    await register_in_browser(client, "booker@example.com", name="Booker", timezone="UTC")
    booked = await post_form(client, f"/events/{event['id']}/book", {"seats": "1"})
    assert booked.status_code == 302 and client.cookies.get(FLASH_COOKIE)
    # Someone else is signed in on the same browser by the time the page loads.
    client.cookies.set(ACCESS_COOKIE, someone)
    page = await client.get("/bookings")
    assert page.status_code == 200 and "No bookings yet" in page.text
    assert "booked for" not in page.text and flash_deleted(page)


async def shown_once(client, answer, text: str) -> None:
    """`answer` redirects to a page that says `text` once."""
    assert answer.status_code in (302, 303), answer.text
    page = await client.get(answer.headers["location"])
    assert page.status_code == 200 and f"data-flash>{text}</div>" in page.text, text
    again = await client.get(answer.headers["location"])
    assert "data-flash" not in again.text


async def test_creating_and_editing_an_event_a_group_and_a_review_say_so_once(client, session):
    user = await register_in_browser(client, "maker@example.com", name="Maker", timezone="UTC")
    assert user.status_code == 302
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    form = {
        "title": "Night Owls",
        "description": "",
        "venue": "Clock Tower",
        "starts_at": starts.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (starts + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "timezone": "UTC",
        "capacity": "20",
        "price": "0",
        "currency": "EUR",
    }
    created = await post_form(client, "/events/new", form)
    await shown_once(client, created, "Night Owls is created and open for booking.")
    event_path = created.headers["location"]
    edited = await post_form(client, f"{event_path}/edit", {**form, "title": "Early Owls"})
    await shown_once(client, edited, "Your changes to Early Owls are saved.")
    group = await post_form(client, "/groups", {"name": "Friday Crew"})
    await shown_once(client, group, "Friday Crew is created: invite people from here.")

    me = (await client.get("/api/v1/me")).json()
    ended = await insert_event(session, me["id"], starts_in=-timedelta(hours=5), duration=timedelta(hours=2))
    await insert_booking(session, ended, me["id"])
    reviewed = await post_form(client, f"/events/{ended.id}/review", {"rating": "5", "comment": "Lovely."})
    await shown_once(client, reviewed, "Thank you: your review is posted below.")
