"""The notifications JSON API and announcements."""

from __future__ import annotations

from sqlalchemy import select, update

from tests.api import bearer, book, create_event, inbox, pay, register
from tests.services import clear_of_a_limit_window_edge
from webapp.auth.models import User
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService


async def make_admin(session, user_id: int) -> None:
    await session.execute(update(User).where(User.id == user_id).values(role="admin"))
    await session.commit()


async def announce(client, token, **body):
    return await client.post(
        "/api/v1/announcements", json={"title": "Hello", "body": "World", **body}, headers=bearer(token)
    )


async def test_an_organizer_announces_to_confirmed_attendees_only(client):
    organizer, org_token = await register(client)
    event = await create_event(client, org_token)
    attendee, attendee_token = await register(client)
    pending, pending_token = await register(client)
    booking = (await book(client, attendee_token, event["id"])).json()
    assert (await pay(client, attendee_token, booking["id"])).status_code == 200
    await book(client, pending_token, event["id"])  # never paid
    await inbox(client, attendee_token, query="type=booking_confirmed")  # the payment's own notification: seq 1
    response = await announce(client, org_token, event_id=event["id"], title="Doors at 7")
    assert response.status_code == 202
    assert response.json()["recipients"] == 1
    received = await inbox(client, attendee_token, query="type=general")
    assert len(received["items"]) == 1
    item = received["items"][0]
    assert set(item) >= {"id", "seq", "type", "title", "body", "url", "data", "created_at", "seen_at", "read_at"}
    # seq 1 is the booking confirmation the payment caused; the announcement comes after it.
    assert (item["type"], item["title"], item["url"], item["seq"]) == (
        "general",
        "Doors at 7",
        f"/events/{event['id']}",
        2,
    )
    pending_inbox = (await client.get("/api/v1/notifications?type=general", headers=bearer(pending_token))).json()
    assert pending_inbox["items"] == []
    assert organizer["id"] != attendee["id"]


async def test_announcement_refusals(client, session):
    _, org_token = await register(client)
    event = await create_event(client, org_token)
    _, other_token = await register(client)
    assert (await announce(client, other_token, event_id=event["id"])).status_code == 404
    assert (await announce(client, org_token)).status_code == 403  # everyone: admins only
    assert (await announce(client, org_token, event_id=event["id"], title="")).status_code == 422
    assert (await announce(client, org_token, event_id=event["id"], title="x" * 201)).status_code == 422
    bad = await client.post("/api/v1/announcements", json={"body": "no title"}, headers=bearer(org_token))
    assert bad.status_code == 422
    assert (await client.post("/api/v1/announcements", json={"title": "x"})).status_code == 401
    assert await session.scalar(select(Notification.id)) is None


async def test_an_admin_announces_to_everyone_and_is_rate_limited(client, session):
    await clear_of_a_limit_window_edge()
    admin, admin_token = await register(client)
    await make_admin(session, admin["id"])
    member, member_token = await register(client)
    first = await announce(client, admin_token, title="Maintenance tonight")
    assert first.status_code == 202 and first.json()["recipients"] == 2
    titles = [n["title"] for n in (await inbox(client, member_token))["items"]]
    assert titles == ["Maintenance tonight"]
    for _ in range(9):
        assert (await announce(client, admin_token)).status_code == 202
    limited = await announce(client, admin_token)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert member["id"]


async def test_read_unread_read_all_and_counts(client, session):
    admin, token = await register(client)
    await make_admin(session, admin["id"])
    for n, title in enumerate(("one", "two", "three"), start=1):
        await announce(client, token, title=title)
        await inbox(client, token, expect=n)  # in order: each fan-out is its own job
    count = (await client.get("/api/v1/notifications/unread_count", headers=bearer(token))).json()
    assert (count["unread_count"], count["seq"]) == (3, 3)
    items = (await client.get("/api/v1/notifications", headers=bearer(token))).json()["items"]
    newest = items[0]
    read = await client.post(f"/api/v1/notifications/{newest['id']}/read", headers=bearer(token))
    assert read.status_code == 200
    assert read.json()["unread_count"] == 2 and read.json()["notification"]["read_at"] is not None
    unread = await client.post(f"/api/v1/notifications/{newest['id']}/unread", headers=bearer(token))
    assert unread.json()["unread_count"] == 3 and unread.json()["notification"]["read_at"] is None
    partial = await client.post("/api/v1/notifications/read_all", json={"up_to_seq": 2}, headers=bearer(token))
    assert partial.json() == {"updated": 2, "unread_count": 1}
    everything = await client.post("/api/v1/notifications/read_all", headers=bearer(token))
    assert everything.json() == {"updated": 1, "unread_count": 0}
    assert (await client.get("/api/v1/notifications?status=read", headers=bearer(token))).json()["unread_count"] == 0


async def test_another_users_notification_is_404_and_unchanged(client, session):
    admin, token = await register(client)
    await make_admin(session, admin["id"])
    await announce(client, token)
    mine = (await inbox(client, token))["items"][0]
    _, stranger = await register(client)
    for action in ("read", "unread"):
        response = await client.post(f"/api/v1/notifications/{mine['id']}/{action}", headers=bearer(stranger))
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert (await client.post("/api/v1/notifications/999999/read", headers=bearer(token))).status_code == 404
    row = await session.scalar(select(Notification).where(Notification.id == mine["id"]))
    assert row.read_at is None


async def test_listing_pagination_and_bad_parameters(client, session):
    admin, token = await register(client)
    await make_admin(session, admin["id"])
    for n in range(5):
        await announce(client, token, title=f"n{n}")
        await inbox(client, token, expect=n + 1)
    first = (await client.get("/api/v1/notifications?limit=2", headers=bearer(token))).json()
    assert [i["seq"] for i in first["items"]] == [5, 4] and first["next_cursor"] == "4"
    second = (
        await client.get(f"/api/v1/notifications?limit=2&cursor={first['next_cursor']}", headers=bearer(token))
    ).json()
    assert [i["seq"] for i in second["items"]] == [3, 2]
    only_general = (await client.get("/api/v1/notifications?type=general&status=unread", headers=bearer(token))).json()
    assert len(only_general["items"]) == 5
    for query in ("status=maybe", "type=gossip", "limit=0", "limit=abc", "cursor=xyz", "limit=1000"):
        response = await client.get(f"/api/v1/notifications?{query}", headers=bearer(token))
        assert response.status_code == 422, query
        assert "error" in response.json()
    assert (await client.get("/api/v1/notifications")).status_code == 401


async def test_the_inbox_page_panel_and_open_link(client, session):
    from tests.integration.pages import post_form, register_in_browser

    await register_in_browser(client, "inbox@example.com")
    me = (await client.get("/api/v1/me")).json()
    await make_admin(session, me["id"])
    csrf = {"x-csrftoken": client.cookies["tidings_csrf"]}
    await client.post("/api/v1/announcements", json={"title": "<b>bold</b> news", "body": "b"}, headers=csrf)
    await inbox(client)
    page = await client.get("/notifications")
    assert page.status_code == 200 and "&lt;b&gt;bold&lt;/b&gt; news" in page.text and "<b>bold</b>" not in page.text
    assert 'data-seq="1"' in page.text  # the bell knows where the page stands
    panel = await client.post("/notifications/panel", headers={**csrf, "HX-Request": "true"})
    assert panel.status_code == 200 and "Unread" in panel.text and "<html" not in panel.text
    seen = await session.scalar(select(Notification.seen_at))
    await session.rollback()  # on SQLite every transaction holds the write lock: end it
    assert seen is not None
    notification_id = (await client.get("/api/v1/notifications")).json()["items"][0]["id"]
    # What a browser sends when the link is clicked on one of our pages (from another site it reads nothing).
    opened = await client.get(f"/notifications/{notification_id}/open", headers={"Sec-Fetch-Site": "same-origin"})
    assert opened.status_code in (302, 303) and opened.headers["location"] == "/"
    assert (await session.scalar(select(Notification.read_at))) is not None
    await session.rollback()
    marked = await post_form(client, f"/notifications/{notification_id}/unread", {})
    assert marked.status_code == 200 and "is-unread" in marked.text and "tidings:count" in marked.headers["hx-trigger"]
    filtered = await client.get("/notifications?status=read")
    assert "Nothing here." in filtered.text
    bad = await client.get("/notifications?status=bogus")
    assert bad.status_code == 422


async def test_the_unread_count_is_bounded_at_100_which_the_badge_shows_as_99_plus(client, session):
    """Counting stops at 100 (a LIMIT, not a count of everything): above 99 the badge says "99+"
    whatever the real number, and the API's unread_count is then 100, meaning "more than 99"."""
    user, token = await register(client)
    service = NotificationService(session)
    await service.notify_many([NewNotification(user_id=user["id"], type="general", title=f"n{i}") for i in range(150)])
    await session.commit()
    response = await client.get("/api/v1/notifications/unread_count", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["unread_count"] == 100
    assert response.json()["seq"] == 150  # the position is exact; only the count is bounded
    assert (await service.state(user["id"])).unread_count == 100

    # Reading one of 150 leaves 149 unread: still "more than 99".
    first = await service.listing(user["id"], status="unread", limit=1)
    _, state = await service.mark_read(user["id"], first[0][0].id)
    await session.commit()
    assert state.unread_count == 100

    # The page's bell, rendered from the same count.
    page = await client.get("/notifications", headers=bearer(token))
    assert page.status_code == 200, page.text
    assert 'aria-hidden="true" >99+</span>' in page.text
    assert 'aria-label="Notifications, more than 99 unread"' in page.text
