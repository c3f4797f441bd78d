"""The person who caused a notification: `actor` in the JSON API and an initials avatar on the pages."""

from __future__ import annotations

import re

from tests.api import bearer, book, create_event, eventually, inbox, register
from webapp.notifications.services import NewNotification, NotificationService, initials


def test_initials_are_the_first_letters_of_the_first_and_last_words_of_a_name():
    assert initials("Ada Lovelace") == "AL"
    assert initials("Ada King Lovelace") == "AL"
    assert initials("cher") == "C"
    assert initials("élodie dupont") == "ÉD"
    assert initials("(organizer) Bob") == "B"
    assert initials("   ") == "?"
    assert initials("★") == "?"


async def test_an_announcement_names_its_sender_as_actor_in_the_api_and_your_own_booking_names_no_one(client):
    organizer, org_token = await register(client, name="Ada Lovelace")
    event = await create_event(client, org_token, price_cents=0)
    _, attendee_token = await register(client, name="Grace Hopper")
    assert (await book(client, attendee_token, event["id"])).status_code == 201
    await inbox(client, attendee_token, query="type=booking_confirmed")
    response = await client.post(
        "/api/v1/announcements",
        json={"title": "Doors at 7", "body": "", "event_id": event["id"]},
        headers=bearer(org_token),
    )
    assert response.status_code == 202
    received = await inbox(client, attendee_token, expect=2)
    by_type = {item["type"]: item for item in received["items"]}
    assert by_type["general"]["actor"] == {"id": organizer["id"], "name": "Ada Lovelace", "initials": "AL"}
    assert by_type["booking_confirmed"]["actor"] is None  # their own act: no one else caused it


async def test_organizer_news_names_the_one_booker_and_no_one_once_it_counts_several(client):
    organizer, org_token = await register(client, name="Olga Organizer")
    event = await create_event(client, org_token, price_cents=0)
    first, first_token = await register(client, name="Fiona First")
    _, second_token = await register(client, name="Sam Second")
    assert (await book(client, first_token, event["id"])).status_code == 201
    one = await inbox(client, org_token, query="type=event_bookings")
    assert one["items"][0]["actor"] == {"id": first["id"], "name": "Fiona First", "initials": "FF"}
    assert (await book(client, second_token, event["id"])).status_code == 201

    async def two_counted():
        items = (await client.get("/api/v1/notifications?type=event_bookings", headers=bearer(org_token))).json()
        newest = items["items"][0]
        return newest if newest["title"].startswith("2 new bookings") else None

    newest = await eventually(two_counted)
    assert newest["actor"] is None


async def test_the_inbox_page_and_dropdown_show_the_actor_initials_hidden_from_screen_readers_with_the_name_in_text(
    client, session
):
    actor, _ = await register(client, name="Ada Lovelace")
    user, token = await register(client, name="Grace Hopper")
    async with session.begin():
        service = NotificationService(session)
        await service.notify(
            NewNotification(user_id=user["id"], type="group_invitation", title="Join Chess Club", actor_id=actor["id"])
        )
        await service.notify(NewNotification(user_id=user["id"], type="event_reminder", title="Starts soon"))
    for page in (
        (await client.get("/notifications", headers=bearer(token))).text,
        (await client.post("/notifications/panel", headers=bearer(token))).text,
    ):
        avatars = re.findall(r'<span class="notif-avatar avatar-(\d+)" aria-hidden="true">(\w+)<svg', page)
        assert avatars == [(str(actor["id"] % 12), "AL")], page
        assert '<span class="notif-actor">Ada Lovelace</span>' in page
        assert page.count('class="notif-icon"') == 1  # the reminder keeps its icon
