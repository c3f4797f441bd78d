"""No input gives a 500, on SQLite and PostgreSQL: times far out, integers beyond the database's
range, NUL characters, bodies too deep or too large, and stored values no page may choke on.
Every refusal is a 4xx in the error shape (JSON for the API, the error page for pages) and
changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from tests.api import bearer, create_event, event_payload, register
from tests.integration.pages import csrf_token, post_form, register_in_browser
from webapp.events.models import Event
from webapp.groups.models import Group
from webapp.validation import MAX_REQUEST_BODY_BYTES


def assert_error(response, *statuses: int) -> dict:
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]


def assert_error_page(response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text


async def test_an_event_stored_at_the_end_of_time_breaks_no_page_that_shows_it(client, session):
    """Year 9999 in a +14:00 zone is past the last day Python can show: the pages that list or
    show the event still answer (the time is shown in UTC), for everyone."""
    organizer, token = await register(client)
    far = Event(
        organizer_id=organizer["id"],
        title="Millennium Gala",
        venue="Line Islands",
        starts_at=datetime(9999, 12, 31, 20, 0, tzinfo=UTC),
        ends_at=datetime(9999, 12, 31, 22, 0, tzinfo=UTC),
        timezone="Pacific/Kiritimati",
        capacity=10,
        price_cents=0,
        currency="EUR",
    )
    session.add(far)
    await session.commit()
    for path in ("/", "/?q=millennium", "/events/_list?q=gala", f"/events/{far.id}", "/api/v1/events"):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert "Millennium Gala" in response.text, path
    assert "9999" in (await client.get(f"/events/{far.id}")).text
    organizer_page = await client.get(f"/organizer/events/{far.id}", headers=bearer(token))
    assert organizer_page.status_code == 200


async def test_event_times_outside_the_years_2000_to_2099_are_refused_by_the_api_and_the_form(client, session):
    _, token = await register(client)
    for starts_at in ("9999-12-31T23:00:00+14:00", "0001-01-01T00:00:00+14:00", "2100-06-01T00:00:00+00:00"):
        response = await client.post(
            "/api/v1/events",
            json=event_payload(starts_at=starts_at, ends_at="2101-01-01T00:00:00+00:00"),
            headers=bearer(token),
        )
        error = assert_error(response, 422)
        assert "2000" in error["fields"]["starts_at"], error
    event = await create_event(client, token)
    moved = await client.patch(
        f"/api/v1/events/{event['id']}", json={"ends_at": "9999-12-31T23:59:59-12:00"}, headers=bearer(token)
    )
    assert "2099" in assert_error(moved, 422)["fields"]["ends_at"]

    await register_in_browser(client, "former@example.com")
    form = {
        "title": "Far Future",
        "venue": "Nowhere",
        "timezone": "Pacific/Kiritimati",
        "starts_at": "9999-12-31T23:00",
        "ends_at": "9999-12-31T23:30",
        "capacity": "10",
        "price": "0",
        "currency": "EUR",
    }
    refused = await post_form(client, "/events/new", form)
    assert_error_page(refused, 422)
    assert "between the years 2000 and 2099" in refused.text
    assert await session.scalar(select(func.count(Event.id))) == 1  # only the one made above


async def test_integers_beyond_the_database_range_are_refused_in_bodies_queries_and_forms(client):
    organizer, organizer_token = await register(client)
    event = await create_event(client, organizer_token, price_cents=0)
    _, token = await register(client)
    auth = bearer(token)
    for body in ({"seats": 1, "group_id": 2**31}, {"seats": 2**31}, {"seats": -(2**40)}):
        assert_error(await client.post(f"/api/v1/events/{event['id']}/bookings", json=body, headers=auth), 400, 422)
    for body in ({"up_to_seq": -(2**40)}, {"up_to_seq": 2**31}):
        assert_error(await client.post("/api/v1/notifications/read_all", json=body, headers=auth), 400, 422)
    for query in (f"cursor={2**40}", "cursor=-1", f"limit={10**30}"):
        assert_error(await client.get(f"/api/v1/notifications?{query}", headers=auth), 400, 422)
    announcement = {"title": "Hello", "event_id": 2**40}
    assert_error(await client.post("/api/v1/announcements", json=announcement, headers=bearer(organizer_token)), 422)
    assert_error(await client.get(f"/api/v1/events/{2**31}"), 422)
    assert (await client.get("/api/v1/bookings", headers=auth)).json()["items"] == []

    group = (await client.post("/api/v1/groups", json={"name": "Crew"}, headers=bearer(organizer_token))).json()
    await register_in_browser(client, "forms@example.com")
    invited = await client.post(
        f"/api/v1/groups/{group['id']}/invitations",
        json={"email": "forms@example.com"},
        headers=bearer(organizer_token),
    )
    answered = await post_form(client, f"/invitations/{invited.json()['id']}/decline", {"notification_id": str(2**40)})
    assert_error_page(answered, 404)
    booked = await post_form(client, f"/events/{event['id']}/book", {"group_id": str(2**40)})
    assert_error_page(booked, 422)
    assert_error_page(await post_form(client, "/notifications/read_all", {"up_to_seq": str(-(2**40))}), 422)
    assert_error_page(await client.get(f"/notifications?cursor={2**40}"), 422)
    assert (await client.get("/bookings")).text.count("/cancel") == 0


async def test_nul_characters_are_refused_in_every_kind_of_input(client, session):
    _, token = await register(client, email="nul@example.com")
    auth = bearer(token)
    api_calls = [
        ("/api/v1/auth/login", {"email": "nul\x00@example.com", "password": "whatever it is"}, {}),
        ("/api/v1/auth/register", {"email": "x@example.com", "password": "long enough pw", "name": "N\x00"}, {}),
        ("/api/v1/groups", {"name": "Crew\x00"}, auth),
        ("/api/v1/events", event_payload(title="Gala\x00"), auth),
        ("/api/v1/announcements", {"title": "Hi", "body": "\x00"}, auth),
    ]
    for path, body, headers in api_calls:
        error = assert_error(await client.post(path, json=body, headers=headers), 422)
        assert "NUL" in error["message"], (path, error)
    for path in ("/api/v1/events?q=%00", "/api/v1/events?q=gala%00"):
        error = assert_error(await client.get(path), 422)
        assert error["fields"] == {"q": "must not contain NUL characters"}, error
    for path in ("/?q=%00", "/events/_list?q=a%00b", "/login?next=/%00"):
        assert_error_page(await client.get(path), 422)
    await csrf_token(client)
    assert_error_page(await post_form(client, "/login", {"email": "nul\x00@example.com", "password": "x"}), 422)
    await register_in_browser(client, "browser-nul@example.com")
    assert_error_page(await post_form(client, "/groups", {"name": "Crew\x00"}), 422)
    assert await session.scalar(select(func.count(Group.id))) == 0
    assert await session.scalar(select(func.count(Event.id))) == 0


async def test_bodies_nested_too_deep_or_too_large_and_nul_in_static_paths_get_a_clean_4xx(client):
    _, token = await register(client)
    headers = {**bearer(token), "content-type": "application/json"}
    for body in ("[" * 1000 + "]" * 1000, '{"up_to_seq": ' + "[" * 1000 + "]" * 1000 + "}"):
        error = assert_error(await client.post("/api/v1/notifications/read_all", content=body, headers=headers), 400)
        assert "nested" in error["message"]
    huge = '{"name": "' + "x" * (MAX_REQUEST_BODY_BYTES + 1) + '"}'
    assert_error(await client.post("/api/v1/groups", content=huge, headers=headers), 413)
    await register_in_browser(client, "big@example.com")
    big_form = await post_form(client, "/groups", {"name": "x" * (MAX_REQUEST_BODY_BYTES + 1)})
    assert_error_page(big_form, 413)
    for path in ("/static/%00", "/static/css/%00.css", "/static/css/app.css%00.map"):
        assert_error_page(await client.get(path), 400)
