"""People who should be told: an organizer of the bookings and cancellations on their events
(one unread item per event that keeps counting, not one per booking) and of new reviews; a group
owner of every answer to their invitations."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from tests.api import bearer, book, create_event, eventually, inbox, register
from tests.integration.rows import insert_booking, insert_event


async def unread(client: Any, token: str, type_: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/notifications?status=unread&type={type_}", headers=bearer(token))
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def one_unread_titled(client: Any, token: str, type_: str, title: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        items = await unread(client, token, type_)
        return items[0] if len(items) == 1 and items[0]["title"] == title else None

    return await eventually(check, within=20)  # type: ignore[no-any-return]


async def test_bookings_on_an_event_collapse_into_one_unread_item_for_its_organizer(client) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, price_cents=0, title="Rooftop Jazz", capacity=50)
    members = [await register(client) for _ in range(5)]
    # At once: the confirmations' jobs run side by side on the worker threads, and still count
    # into one item (on PostgreSQL this races for real).
    responses = await asyncio.gather(*(book(client, token, event["id"]) for _, token in members))
    assert [r.status_code for r in responses] == [201] * 5
    item = await one_unread_titled(client, organizer, "event_bookings", "5 new bookings for Rooftop Jazz")
    assert item["body"] == "5 of 50 seats booked"
    assert item["url"] == f"/organizer/events/{event['id']}"
    assert sorted(item["data"]["booked"]) == sorted(r.json()["id"] for r in responses)

    # Once read, the next booking starts a new count; a cancellation joins the unread item.
    assert (await client.post(f"/api/v1/notifications/{item['id']}/read", headers=bearer(organizer))).status_code == 200
    _, late = await register(client)
    late_booking = (await book(client, late, event["id"], seats=2)).json()
    await one_unread_titled(client, organizer, "event_bookings", "1 new booking for Rooftop Jazz")
    cancelled = await client.post(f"/api/v1/bookings/{late_booking['id']}/cancel", headers=bearer(late))
    assert cancelled.status_code == 200
    item = await one_unread_titled(
        client, organizer, "event_bookings", "1 new booking and 1 cancellation for Rooftop Jazz"
    )
    assert item["body"] == "5 of 50 seats booked"


async def test_an_organizer_is_not_told_of_their_own_booking(client) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, price_cents=0, title="Own Party")
    _, guest = await register(client)
    await book(client, organizer, event["id"])
    await book(client, guest, event["id"])
    await one_unread_titled(client, organizer, "event_bookings", "1 new booking for Own Party")


async def test_an_organizer_hears_of_each_new_review(client, session) -> None:
    organizer, organizer_token = await register(client)
    attendee, token = await register(client, name="Rita")
    event = await insert_event(
        session, organizer["id"], title="Wine Tasting", starts_in=-timedelta(hours=5), duration=timedelta(hours=2)
    )
    await insert_booking(session, event, attendee["id"])
    response = await client.post(
        f"/api/v1/events/{event.id}/reviews", json={"rating": 4, "comment": "Loved it."}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    item = await one_unread_titled(client, organizer_token, "review_received", "Rita reviewed Wine Tasting: 4 of 5")
    assert item["body"] == "Loved it."
    assert item["url"] == f"/events/{event.id}#reviews"
    assert item["data"]["rating"] == 4 and item["data"]["event_id"] == event.id
    assert item["actor"] == {"id": attendee["id"], "name": "Rita", "initials": "R"}
    assert await unread(client, token, "review_received") == []  # the reviewer is not told


async def test_a_group_owner_hears_of_every_answer_to_their_invitations(client) -> None:
    owner_user, owner = await register(client, name="Olive Owner")
    accepting, accepting_token = await register(client, name="Ben")
    declining, declining_token = await register(client, name="Chloe")
    group = (await client.post("/api/v1/groups", json={"name": "Friday Crew"}, headers=bearer(owner))).json()
    invitations = [
        (
            await client.post(
                f"/api/v1/groups/{group['id']}/invitations", json={"email": person["email"]}, headers=bearer(owner)
            )
        ).json()
        for person in (accepting, declining)
    ]
    # Each answers once told (an invitation answered before its job ran is never announced).
    [invited] = (await inbox(client, accepting_token, query="type=group_invitation"))["items"]
    assert invited["actor"] == {"id": owner_user["id"], "name": "Olive Owner", "initials": "OO"}
    await inbox(client, declining_token, query="type=group_invitation")
    accept = await client.post(f"/api/v1/invitations/{invitations[0]['id']}/accept", headers=bearer(accepting_token))
    decline = await client.post(f"/api/v1/invitations/{invitations[1]['id']}/decline", headers=bearer(declining_token))
    assert (accept.status_code, decline.status_code) == (200, 200)

    async def both() -> list[dict[str, Any]] | None:
        items = await unread(client, owner, "invitation_answered")
        return items if len(items) == 2 else None

    items = sorted(await eventually(both, within=20), key=lambda n: n["title"])
    assert [n["title"] for n in items] == [
        "Ben accepted your invitation to “Friday Crew”",
        "Chloe declined your invitation to “Friday Crew”",
    ]
    assert items[0]["url"] == f"/groups/{group['id']}"
    assert [n["data"]["invitation_status"] for n in items] == ["accepted", "declined"]
    assert [n["actor"]["id"] for n in items] == [accepting["id"], declining["id"]]
    assert [n["actor"]["initials"] for n in items] == ["B", "C"]
    # Answering again changes nothing and tells nobody twice.
    again = await client.post(f"/api/v1/invitations/{invitations[0]['id']}/accept", headers=bearer(accepting_token))
    assert again.status_code == 409
    await asyncio.sleep(0.5)
    assert len(await unread(client, owner, "invitation_answered")) == 2
