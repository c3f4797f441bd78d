"""Delivery reports through the JSON API: every announcement, event update and cancellation gets
one, and its numbers move as the notifications it sent are delivered live, seen and read.

The app runs behind a real server in this process (streams need one); its embedded workers run
the fan-outs, and "delivered live" is written by the periodic flush about a second after the
write, so every expectation is waited for with a deadline.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import bearer, book, create_event, eventually, register
from tests.reliability.sse import open_stream
from webapp.auth.models import User

WAIT = 15.0


async def deliveries(http: Any, token: str, event_id: int, query: str = "") -> Any:
    return await http.get(f"/api/v1/events/{event_id}/deliveries{query}", headers=bearer(token))


async def report_when(http: Any, token: str, event_id: int, report_id: int, **expected: int) -> dict[str, Any]:
    """The event's report `report_id` once its counts read as expected (jobs and the flush run
    in the background)."""
    last: dict[str, Any] = {}

    async def check() -> dict[str, Any] | None:
        nonlocal last
        response = await deliveries(http, token, event_id)
        assert response.status_code == 200, response.text
        [report] = [r for r in response.json()["items"] if r["id"] == report_id]
        last = report
        return report if all(report[k] == v for k, v in expected.items()) else None

    try:
        return await eventually(check, within=WAIT)  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(f"report {report_id} never read {expected}; last {last}") from None


async def attendee_of(http: Any, event_id: int) -> tuple[dict[str, Any], str]:
    user, token = await register(http)
    assert (await book(http, token, event_id)).status_code == 201
    return user, token


async def make_admin(session: AsyncSession, user_id: int) -> None:
    await session.execute(update(User).where(User.id == user_id).values(role="admin"))
    await session.commit()


async def test_an_announcement_to_live_attendees_is_counted_delivered_then_seen_then_read(
    in_process_server: str,
) -> None:
    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as http:
        _, organizer = await register(http, name="Olga Organizer")
        event = await create_event(http, organizer, price_cents=0)
        attendees = [await attendee_of(http, event["id"]) for _ in range(4)]
        async with AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(open_stream(http, token)) for _, token in attendees]
            for stream in streams:
                await stream.next(WAIT)  # the stream has begun: what comes now is live
            answer = await http.post(
                "/api/v1/announcements",
                json={"event_id": event["id"], "title": "Doors open at seven"},
                headers=bearer(organizer),
            )
            assert answer.status_code == 202, answer.text
            report_id = answer.json()["report_id"]
            assert isinstance(report_id, int)
            for stream in streams:
                assert len(await stream.notifications(1, WAIT)) == 1
            report = await report_when(http, organizer, event["id"], report_id, recipients=4, notified=4, delivered=4)
        assert report["kind"] == "announcement"
        assert report["title"] == "Doors open at seven"
        assert report["event_id"] == event["id"]
        assert (report["seen"], report["read"], report["unseen"], report["replaced"]) == (0, 0, 4, 0)

        first, second = attendees[0][1], attendees[1][1]
        # Opening the dropdown marks what it shows seen.
        assert (await http.post("/notifications/panel", headers=bearer(first))).status_code == 200
        await report_when(http, organizer, event["id"], report_id, seen=1, read=0, unseen=3)

        [item] = (await http.get("/api/v1/notifications?type=general", headers=bearer(first))).json()["items"]
        assert (await http.post(f"/api/v1/notifications/{item['id']}/read", headers=bearer(first))).status_code == 200
        await report_when(http, organizer, event["id"], report_id, seen=1, read=1, unseen=3)

        # Read without ever opening the dropdown (mark all as read): read implies seen.
        assert (await http.post("/api/v1/notifications/read_all", headers=bearer(second))).status_code == 200
        report = await report_when(http, organizer, event["id"], report_id, seen=2, read=2, unseen=2)
        assert report["unseen"] == report["recipients"] - report["seen"]
        assert report["delivered"] == 4  # reading changes nothing about delivery

        one = await http.get(f"/api/v1/deliveries/{report_id}", headers=bearer(organizer))
        assert one.status_code == 200, one.text
        assert one.json() == report


async def test_reports_are_shown_only_to_the_organizer_and_admins(client: Any, session: AsyncSession) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, price_cents=0)
    _, attendee = await attendee_of(client, event["id"])
    _, other_organizer = await register(client)
    await create_event(client, other_organizer, price_cents=0)
    admin, admin_token = await register(client)
    await make_admin(session, admin["id"])
    answer = await client.post(
        "/api/v1/announcements", json={"event_id": event["id"], "title": "Bring a coat"}, headers=bearer(organizer)
    )
    report_id = answer.json()["report_id"]

    assert (await deliveries(client, organizer, event["id"])).status_code == 200
    assert (await deliveries(client, admin_token, event["id"])).status_code == 200
    for stranger in (other_organizer, attendee):
        refused = await deliveries(client, stranger, event["id"])
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["code"] == "not_found"
        assert (await client.get(f"/api/v1/deliveries/{report_id}", headers=bearer(stranger))).status_code == 404
    assert (await deliveries(client, organizer, event["id"] + 1000)).status_code == 404
    assert (await client.get(f"/api/v1/deliveries/{report_id + 1000}", headers=bearer(admin_token))).status_code == 404
    anonymous = await client.get(f"/api/v1/events/{event['id']}/deliveries")
    assert anonymous.status_code == 401
    assert (await client.get(f"/api/v1/deliveries/{report_id}")).status_code == 401
    assert (await client.get(f"/api/v1/deliveries/{report_id}", headers=bearer(admin_token))).status_code == 200


async def test_an_admin_announcement_to_everyone_is_reported_to_its_sender_and_admins_only(
    client: Any, session: AsyncSession
) -> None:
    admin, admin_token = await register(client)
    await make_admin(session, admin["id"])
    other_admin, other_admin_token = await register(client)
    await make_admin(session, other_admin["id"])
    _, member = await register(client)
    answer = await client.post(
        "/api/v1/announcements", json={"title": "Maintenance at noon"}, headers=bearer(admin_token)
    )
    assert answer.status_code == 202, answer.text
    report_id = answer.json()["report_id"]

    async def counted() -> Any:
        body = (await client.get(f"/api/v1/deliveries/{report_id}", headers=bearer(admin_token))).json()
        return body if body["notified"] == 3 else None

    report = await eventually(counted, within=WAIT)
    assert (report["kind"], report["event_id"], report["recipients"]) == ("announcement", None, 3)
    assert (await client.get(f"/api/v1/deliveries/{report_id}", headers=bearer(other_admin_token))).status_code == 200
    assert (await client.get(f"/api/v1/deliveries/{report_id}", headers=bearer(member))).status_code == 404


async def test_event_updates_and_the_cancellation_each_get_a_report_and_replaced_items_stay_with_theirs(
    client: Any,
) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, price_cents=0)
    attendees = [await attendee_of(client, event["id"]) for _ in range(3)]
    event_id = event["id"]

    assert (
        await client.patch(f"/api/v1/events/{event_id}", json={"venue": "Pier 7"}, headers=bearer(organizer))
    ).status_code == 200
    [first] = (await deliveries(client, organizer, event_id)).json()["items"]
    assert (first["kind"], first["event_id"]) == ("event_updated", event_id)
    first = await report_when(client, organizer, event_id, first["id"], recipients=3, notified=3)

    reader = attendees[0][1]
    assert (await client.post("/api/v1/notifications/read_all", headers=bearer(reader))).status_code == 200
    await report_when(client, organizer, event_id, first["id"], read=1, unseen=2)

    assert (
        await client.patch(f"/api/v1/events/{event_id}", json={"title": "Jazz on the Pier"}, headers=bearer(organizer))
    ).status_code == 200
    newest = (await deliveries(client, organizer, event_id)).json()["items"][0]
    assert newest["id"] != first["id"] and newest["kind"] == "event_updated"
    # The two who had not read the first update get one item telling both changes, counted under
    # the newest update's report; their first items are counted as replaced under the first.
    await report_when(client, organizer, event_id, newest["id"], recipients=3, notified=3, unseen=3)
    await report_when(client, organizer, event_id, first["id"], notified=3, read=1, replaced=2, unseen=0)

    assert (await client.post(f"/api/v1/events/{event_id}/cancel", headers=bearer(organizer))).status_code == 200
    items = (await deliveries(client, organizer, event_id)).json()["items"]
    assert [r["kind"] for r in items] == ["event_cancelled", "event_updated", "event_updated"]
    assert [r["id"] for r in items] == sorted((r["id"] for r in items), reverse=True)  # newest first
    cancelled = await report_when(client, organizer, event_id, items[0]["id"], recipients=3, notified=3)
    assert cancelled["replaced"] == 0
    # Cancelling made every unread update obsolete: the newest update's items are all replaced.
    await report_when(client, organizer, event_id, newest["id"], replaced=3, read=0, unseen=0)

    # Pages of reports, newest first.
    page = (await deliveries(client, organizer, event_id, "?limit=2")).json()
    assert [r["id"] for r in page["items"]] == [r["id"] for r in items[:2]]
    rest = (await deliveries(client, organizer, event_id, f"?limit=2&cursor={page['next_cursor']}")).json()
    assert [r["id"] for r in rest["items"]] == [items[2]["id"]] and rest["next_cursor"] is None
    assert (await deliveries(client, organizer, event_id, "?cursor=nonsense")).status_code == 422
    assert (await deliveries(client, organizer, event_id, "?limit=0")).status_code == 422
