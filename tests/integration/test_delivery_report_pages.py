"""Delivery reports on pages: the event page's section for its organizer and admins, its live
stream (a fresh fragment only when the numbers change, closed with the session), and the admins'
announcement form (POST-redirect-GET, errors keep the input) with its own live reports."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import bearer, book, create_event, eventually, register
from tests.integration.pages import post_form, register_in_browser
from tests.reliability.sse import Closed, Event, open_stream
from webapp.auth.models import User

WAIT = 15.0


async def make_admin(session: AsyncSession, user_id: int) -> None:
    await session.execute(update(User).where(User.id == user_id).values(role="admin"))
    await session.commit()


def count(html: str, report_id: int, name: str) -> int:
    """One number of one report, as the fragment shows it."""
    report = re.search(rf'data-report-id="{report_id}".*?</article>', html, re.S)
    assert report, f"report {report_id} is not shown in:\n{html}"
    number = re.search(rf'data-count="{name}"[^>]*>\s*(\d+)', report.group(0))
    assert number, f"no {name} count in report {report_id}:\n{report.group(0)}"
    return int(number.group(1))


async def announce(http: Any, token: str, event_id: int | None, title: str) -> int:
    body: dict[str, Any] = {"title": title} if event_id is None else {"title": title, "event_id": event_id}
    answer = await http.post("/api/v1/announcements", json=body, headers=bearer(token))
    assert answer.status_code == 202, answer.text
    return int(answer.json()["report_id"])


async def test_the_event_page_shows_delivery_reports_to_its_organizer_and_admins_only(
    client: Any, session: AsyncSession
) -> None:
    organizer, organizer_token = await register(client, name="Olga")
    event = await create_event(client, organizer_token, price_cents=0)
    _, attendee = await register(client)
    assert (await book(client, attendee, event["id"])).status_code == 201
    report_id = await announce(client, organizer_token, event["id"], "Doors open at seven")
    admin, admin_token = await register(client)
    await make_admin(session, admin["id"])

    for token in (organizer_token, admin_token):
        page = await client.get(f"/events/{event['id']}", headers=bearer(token))
        assert page.status_code == 200
        assert "Delivery reports" in page.text
        assert f'hx-sse:connect="/events/{event["id"]}/deliveries/stream"' in page.text
        assert "Doors open at seven" in page.text and f'data-report-id="{report_id}"' in page.text
    for headers in (bearer(attendee), {}):
        page = await client.get(f"/events/{event['id']}", headers=headers)
        assert page.status_code == 200
        assert "Delivery reports" not in page.text and "/deliveries/stream" not in page.text


async def test_the_report_stream_sends_a_fragment_only_when_the_numbers_change(in_process_server: str) -> None:
    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as http:
        _, organizer = await register(http, name="Olga")
        event = await create_event(http, organizer, price_cents=0)
        path = f"/events/{event['id']}/deliveries/stream"
        _, attendee = await register(http)
        assert (await book(http, attendee, event["id"])).status_code == 201

        async with open_stream(http, None, path=path) as anonymous:
            assert anonymous.status == 401
        for token, missing in ((attendee, path), (organizer, f"/events/{event['id'] + 1000}/deliveries/stream")):
            async with open_stream(http, token, path=missing) as refused:
                assert refused.status == 404

        async with open_stream(http, organizer, path=path) as stream:
            assert stream.status == 200
            first = await stream.next_event(WAIT)
            assert isinstance(first, Event) and first.event == "message"
            assert "No delivery reports yet" in first.data
            report_id = await announce(http, organizer, event["id"], "Bring a coat")
            html = ""
            while not html or count(html, report_id, "notified") < 1:
                update_ = await stream.next_event(WAIT)
                assert isinstance(update_, Event), update_
                html = update_.data
            assert count(html, report_id, "recipients") == 1

            # The attendee reads it: the next fragment says so.
            [item] = (await http.get("/api/v1/notifications?type=general", headers=bearer(attendee))).json()["items"]
            await http.post(f"/api/v1/notifications/{item['id']}/read", headers=bearer(attendee))
            while count(html, report_id, "read") < 1:
                update_ = await stream.next_event(WAIT)
                assert isinstance(update_, Event), update_
                html = update_.data
            assert count(html, report_id, "seen") == 1

            # Nothing changes: nothing is sent (heartbeats are comments).
            quiet_until = time.monotonic() + 2.5
            while (left := quiet_until - time.monotonic()) > 0:
                try:
                    unexpected = await stream.next_event(left)
                except TimeoutError:
                    break
                assert False, f"sent without a change: {unexpected}"

            # The session ends (logout): the stream closes at once.
            assert (await http.post("/api/v1/auth/logout", headers=bearer(organizer))).status_code == 204
            assert isinstance(await stream.next_event(5), Closed)


async def test_an_admin_announces_to_everyone_from_the_web_form(client: Any, session: AsyncSession) -> None:
    _, member = await register(client)
    await register_in_browser(client, "member-page@example.com")
    assert (await client.get("/admin/announcements")).status_code == 404  # a member: no such page

    me = (await client.get("/api/v1/me")).json()
    await make_admin(session, me["id"])
    form = await client.get("/admin/announcements")
    assert form.status_code == 200
    assert 'action="/admin/announcements"' in form.text and 'name="_csrf_token"' in form.text

    refused = await post_form(client, "/admin/announcements", {"title": "", "body": "Keep me"})
    assert refused.status_code == 422
    assert "A title of 1 to 200 characters is required." in refused.text
    assert "Keep me" in refused.text  # the input stays

    without_token = await client.post("/admin/announcements", data={"title": "No token"})
    assert without_token.status_code == 403

    sent = await post_form(client, "/admin/announcements", {"title": "Maintenance at noon", "body": "Ten minutes."})
    assert sent.status_code == 303
    landing = sent.headers["location"]
    assert landing == "/admin/announcements"
    page = await client.get(landing)
    assert page.status_code == 200
    assert "Announcement sent to everyone: “Maintenance at noon”" in page.text
    assert re.search(r'data-report-id="\d+"', page.text) and page.text.count('class="report"') == 1
    assert 'hx-sse:connect="/admin/announcements/stream"' in page.text

    async def delivered_to_member() -> Any:
        items = (await client.get("/api/v1/notifications", headers=bearer(member))).json()["items"]
        return [n["title"] for n in items] == ["Maintenance at noon"]

    await eventually(delivered_to_member, within=WAIT)
    again = await client.get(landing)  # reloading the page it landed on sends nothing again
    assert again.status_code == 200 and "Announcement sent" not in again.text
    assert len((await client.get("/api/v1/notifications", headers=bearer(member))).json()["items"]) == 1
