"""What the actors send, through the embedded path: outbox → in-process broker → worker thread."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.api import bearer, book, create_event, eventually, inbox, pay, register, settled_tick
from tests.integration.pages import register_in_browser
from webapp.bookings.reminder_models import Reminder
from webapp.db import utcnow
from webapp.events.models import Event


async def notifications(client, token, type_: str, expect: int = 1) -> list[dict]:
    return (await inbox(client, token, expect=expect, query=f"type={type_}"))["items"]


async def test_payment_confirms_with_a_notification_and_a_failure_explains_itself(client):
    _, organizer = await register(client)
    event = await create_event(client, organizer, title="Harbour Festival", venue="Pier 9")
    _, token = await register(client, timezone="Europe/Lisbon")
    booking = (await book(client, token, event["id"], seats=2)).json()
    declined = await pay(client, token, booking["id"], card="4000 0000 0000 9995")
    assert declined.status_code == 402
    [failed] = await notifications(client, token, "payment_failed")
    assert failed["title"] == "Payment failed: Harbour Festival"
    assert "insufficient funds" in failed["body"] and failed["url"] == f"/bookings/{booking['id']}/pay"
    assert (await pay(client, token, booking["id"])).status_code == 200
    [confirmed] = await notifications(client, token, "booking_confirmed")
    assert confirmed["title"] == "Booking confirmed: Harbour Festival"
    assert confirmed["body"].startswith("2 seats · ") and "Pier 9" in confirmed["body"]
    assert "WET" in confirmed["body"] or "WEST" in confirmed["body"]  # the attendee's time zone


async def test_a_group_booking_tells_every_member_and_a_cancellation_updates_the_confirmation(client):
    _, organizer = await register(client)
    event = await create_event(client, organizer, price_cents=0, title="Picnic")
    owner, owner_token = await register(client)
    member, member_token = await register(client)
    group = (await client.post("/api/v1/groups", json={"name": "Crew"}, headers=bearer(owner_token))).json()
    invitation = (
        await client.post(
            f"/api/v1/groups/{group['id']}/invitations", json={"email": member["email"]}, headers=bearer(owner_token)
        )
    ).json()
    [invited] = await notifications(client, member_token, "group_invitation")
    assert invited["data"]["invitation_id"] == invitation["id"] and invited["url"] == "/groups"
    await client.post(f"/api/v1/invitations/{invitation['id']}/accept", headers=bearer(member_token))
    booking = (await book(client, owner_token, event["id"], group_id=group["id"])).json()
    assert booking["status"] == "confirmed"  # a free event
    for token in (owner_token, member_token):
        [confirmed] = await notifications(client, token, "booking_confirmed")
        assert confirmed["title"] == "Booking confirmed: Picnic"
    [for_member] = await notifications(client, member_token, "booking_confirmed")
    assert for_member["body"].startswith("A group booking holds a seat for you")
    assert (
        await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=bearer(owner_token))
    ).status_code == 200
    for token in (owner_token, member_token):
        [cancelled] = await notifications(client, token, "booking_cancelled")
        assert cancelled["title"] == "Booking cancelled: Picnic"

    async def confirmation_shows_cancelled():
        [item] = await notifications(client, member_token, "booking_confirmed")
        return item["data"]["booking_status"] == "cancelled"

    assert await eventually(confirmation_shows_cancelled)


async def test_an_invitation_is_answered_from_the_notification_in_place(client, session):
    owner, owner_token = await register(client)
    await register_in_browser(client, "invitee-jobs@example.com")
    csrf = {"x-csrftoken": client.cookies["tidings_csrf"]}
    group = (await client.post("/api/v1/groups", json={"name": "Chess"}, headers=bearer(owner_token))).json()
    await client.post(
        f"/api/v1/groups/{group['id']}/invitations",
        json={"email": "invitee-jobs@example.com"},
        headers=bearer(owner_token),
    )
    [item] = (await inbox(client))["items"]
    panel = await client.post("/notifications/panel", headers={**csrf, "HX-Request": "true"})
    assert f"/invitations/{item['data']['invitation_id']}/accept" in panel.text
    answered = await client.post(
        f"/invitations/{item['data']['invitation_id']}/accept",
        data={"notification_id": str(item["id"])},
        headers={**csrf, "HX-Request": "true"},
    )
    assert answered.status_code == 200
    assert "notif-item" in answered.text and "accepted" in answered.text and "is-unread" not in answered.text
    assert "tidings:count" in answered.headers["hx-trigger"]
    again = await client.post(
        f"/invitations/{item['data']['invitation_id']}/accept",
        data={"notification_id": str(item["id"])},
        headers={**csrf, "HX-Request": "true"},
    )
    # Already answered (a second tab): 409, the item shows the answer and a toast says why.
    assert again.status_code == 409 and "accepted" in again.text and "/accept" not in again.text
    assert "tidings:error" in again.headers["hx-trigger"]
    members = (await client.get(f"/groups/{group['id']}")).text
    assert "invitee" in members.lower() or "Browser User" in members


async def test_an_event_update_tells_attendees_what_changed_and_several_collapse_into_one(client):
    _, organizer = await register(client)
    event = await create_event(client, organizer, price_cents=0, venue="Old Hall", timezone="Europe/Berlin")
    _, token = await register(client, timezone="Europe/Berlin")
    await book(client, token, event["id"])
    # The confirmation is a job of its own: wait for it, so the count below has one known origin.
    await notifications(client, token, "booking_confirmed")
    await client.patch(f"/api/v1/events/{event['id']}", json={"venue": "New Hall"}, headers=bearer(organizer))
    [first] = await notifications(client, token, "event_updated")
    assert first["body"] == "Venue: Old Hall → New Hall"
    later = (utcnow().replace(microsecond=0) + timedelta(days=9)).isoformat()
    later_end = (utcnow().replace(microsecond=0) + timedelta(days=9, hours=2)).isoformat()
    await client.patch(
        f"/api/v1/events/{event['id']}", json={"starts_at": later, "ends_at": later_end}, headers=bearer(organizer)
    )

    async def collapsed():
        items = (await client.get("/api/v1/notifications?type=event_updated", headers=bearer(token))).json()
        unread = [i for i in items["items"] if i["read_at"] is None]
        return unread if len(items["items"]) == 2 and len(unread) == 1 else None

    [merged] = await eventually(collapsed)
    assert "Venue: Old Hall → New Hall" in merged["body"] and "Starts: " in merged["body"] and "→" in merged["body"]
    assert "CET" in merged["body"] or "CEST" in merged["body"]
    count = (await client.get("/api/v1/notifications/unread_count", headers=bearer(token))).json()["unread_count"]
    assert count == 2  # the booking confirmation and one merged update
    # Price changes are not news for attendees: the next merged update does not mention it.
    repriced = await client.patch(f"/api/v1/events/{event['id']}", json={"price_cents": 100}, headers=bearer(organizer))
    assert repriced.status_code == 200
    await client.patch(f"/api/v1/events/{event['id']}", json={"venue": "Third Hall"}, headers=bearer(organizer))

    async def merged_again():
        items = (await client.get("/api/v1/notifications?type=event_updated", headers=bearer(token))).json()["items"]
        unread = [i for i in items if i["read_at"] is None and "Third Hall" in i["body"]]
        return unread or None

    [latest] = await eventually(merged_again)
    assert "rice" not in latest["body"] and "1.00" not in latest["body"], latest["body"]


async def test_a_cancellation_tells_attendees_and_makes_earlier_updates_obsolete(client, session):
    _, organizer = await register(client)
    event = await create_event(client, organizer, price_cents=0, title="Gala")
    _, token = await register(client)
    await book(client, token, event["id"])
    # Told before the cancellation: a confirmation whose job runs after it tells nothing
    # (tests/jobs/test_event_change_order.py), and the count below would be 1.
    await notifications(client, token, "booking_confirmed")
    await client.patch(f"/api/v1/events/{event['id']}", json={"venue": "Annex"}, headers=bearer(organizer))
    await notifications(client, token, "event_updated")
    await client.post(f"/api/v1/events/{event['id']}/cancel", headers=bearer(organizer))
    [cancelled] = await notifications(client, token, "event_cancelled")
    assert cancelled["title"] == "Cancelled: Gala"

    async def update_obsolete():
        [update] = (await client.get("/api/v1/notifications?type=event_updated", headers=bearer(token))).json()["items"]
        return update if update["obsolete"] and update["read_at"] else None

    assert await eventually(update_obsolete)
    state = (await client.get("/api/v1/notifications/unread_count", headers=bearer(token))).json()
    assert state["unread_count"] == 2  # the confirmation and the cancellation; the update left the count
    reminders = list(await session.scalars(select(Reminder).where(Reminder.event_id == event["id"])))
    await session.rollback()
    assert reminders == []


async def test_review_requests_go_out_once_after_the_delay(client, session):
    from jobs.scheduler import REVIEW_REQUEST_DELAY
    from webapp.db import create_sessionmaker

    _, organizer = await register(client)
    event = await create_event(client, organizer, price_cents=0, title="Wine Tasting")
    _, token = await register(client)
    await book(client, token, event["id"])
    ends_at = (await session.get(Event, event["id"])).ends_at
    await session.rollback()
    maker = create_sessionmaker(session.bind)
    early = await settled_tick(maker, now=ends_at + REVIEW_REQUEST_DELAY - timedelta(minutes=1))
    assert early.review_events == 0
    due = await settled_tick(maker, now=ends_at + REVIEW_REQUEST_DELAY + timedelta(minutes=1))
    assert due.review_events == 1
    assert (await settled_tick(maker, now=ends_at + REVIEW_REQUEST_DELAY + timedelta(minutes=2))).review_events == 0
    [request] = await notifications(client, token, "review_request")
    assert request["title"] == "How was Wine Tasting?" and request["url"] == f"/events/{event['id']}/review"


async def test_titles_built_from_long_user_text_are_shortened_with_an_ellipsis_not_lost(client):
    """A 200-character event title inside "Booking confirmed: …", or a long inviter and group
    name inside an invitation, is longer than a notification title may be: the attendee still
    gets the notification, its title cut at the column's length with an ellipsis."""
    _, organizer = await register(client)
    long_title = ("Midsummer night open air concert with friends " * 5)[:200]
    event = await create_event(client, organizer, price_cents=0, title=long_title)
    _, token = await register(client, name="N" * 100)
    assert (await book(client, token, event["id"])).json()["status"] == "confirmed"
    [confirmed] = await notifications(client, token, "booking_confirmed")
    assert len(confirmed["title"]) <= 200 and confirmed["title"].endswith("…")
    assert confirmed["title"].startswith("Booking confirmed: Midsummer night open air concert")

    owner, owner_token = await register(client, name="O" * 100)
    member, member_token = await register(client)
    group = (await client.post("/api/v1/groups", json={"name": "G" * 100}, headers=bearer(owner_token))).json()
    invited = await client.post(
        f"/api/v1/groups/{group['id']}/invitations", json={"email": member["email"]}, headers=bearer(owner_token)
    )
    assert invited.status_code == 201, invited.text
    [invitation] = await notifications(client, member_token, "group_invitation")
    assert len(invitation["title"]) <= 200 and invitation["title"].endswith("…")
    assert invitation["title"].startswith("O" * 100 + " invited you to")
