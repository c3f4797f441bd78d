"""Archiving notifications: the service, the JSON API and the pages (the dropdown's header count
and "N more unread", the inbox page's Archived filter and its pages loaded as it scrolls)."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from tests.api import bearer, register
from tests.integration.pages import post_form, register_in_browser
from webapp.db import create_sessionmaker
from webapp.errors import NotFound, ValidationFailed
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService
from webapp.notifications.stream import InboxStream, StreamConfig
from webapp.realtime.doorbell import Hub


def note(user_id: int, title: str = "Hello", **extra) -> NewNotification:
    return NewNotification(user_id=user_id, type="general", title=title, **extra)


async def seed(service: NotificationService, user_id: int, count: int, read: int = 0) -> list[int]:
    """`count` notifications (oldest first); the first `read` of them marked read. Returns ids."""
    created = await service.notify_many([note(user_id, f"n{i}") for i in range(1, count + 1)])
    ids = [n.id for n in created]
    for notification_id in ids[:read]:
        await service.mark_read(user_id, notification_id)
    await service.session.commit()
    return ids


# --- the service ---------------------------------------------------------------------------------


async def test_an_archived_item_leaves_the_listings_and_the_unread_count_until_unarchived(session, users):
    a, _ = users
    service = NotificationService(session)
    first, second, third = await seed(service, a, 3, read=1)
    before = await service.state(a)
    assert before.unread_count == 2

    notification, state = await service.archive(a, second)  # unread
    await session.commit()
    assert notification.archived_at is not None and notification.read_at is None
    assert state.unread_count == 1 and state.version == before.version + 1
    for status in ("all", "unread"):
        listed, _ = await service.listing(a, status)
        assert second not in [n.id for n in listed], status
    archived, _ = await service.listing(a, "archived")
    assert [n.id for n in archived] == [second]
    panel, _ = await service.panel(a, 10)
    assert [n.id for n in panel] == [third, first]

    _, again = await service.archive(a, second)  # nothing changes: no new version, no message
    assert again.version == state.version

    notification, state = await service.unarchive(a, second)
    await session.commit()
    assert notification.archived_at is None and state.unread_count == 2  # back as it was: unread
    assert (await service.listing(a, "archived"))[0] == []
    assert [n.id for n in (await service.listing(a, "all"))[0]] == [third, second, first]


async def test_archiving_another_users_or_a_missing_item_is_not_found_and_changes_nothing(session, users):
    a, b = users
    service = NotificationService(session)
    (mine,) = await seed(service, a, 1)
    version = (await service.state(a)).version
    for change in (service.archive, service.unarchive):
        with pytest.raises(NotFound):
            await change(b, mine)
        with pytest.raises(NotFound):
            await change(a, 999_999)
    await session.rollback()
    row = await session.get(Notification, mine, populate_existing=True)
    assert row is not None and row.archived_at is None
    assert (await service.state(a)).version == version


async def test_archive_read_takes_only_read_items_up_to_the_seq_shown(session, users):
    a, b = users
    service = NotificationService(session)
    ids = await seed(service, a, 5, read=3)  # n1..n3 read, n4 n5 unread
    (others,) = await seed(service, b, 1, read=1)
    shown_up_to = (await service.state(a)).seq
    late = await service.notify(note(a, "read after the page was shown"))
    await session.commit()
    await service.mark_read(a, late.id)
    await session.commit()

    archived, state = await service.archive_read(a, up_to_seq=shown_up_to)
    await session.commit()
    assert archived == ids[:3]
    assert state.unread_count == 2
    listed, _ = await service.listing(a, "all")
    assert [n.id for n in listed] == [late.id, ids[4], ids[3]]
    assert (await service.listing(b, "archived"))[0] == []
    row = await session.get(Notification, others, populate_existing=True)
    assert row is not None and row.archived_at is None
    assert (await service.archive_read(a, up_to_seq=shown_up_to))[0] == []  # nothing left to take
    for bad in (-1, 2**31):
        with pytest.raises(ValidationFailed):
            await service.archive_read(a, up_to_seq=bad)


async def test_mark_all_read_leaves_archived_items_as_they_are(session, users):
    a, _ = users
    service = NotificationService(session)
    kept, archived = await seed(service, a, 2)
    await service.archive(a, archived)
    await session.commit()
    ids, state = await service.mark_all_read(a)
    assert ids == [kept] and state.unread_count == 0
    row = await session.get(Notification, archived, populate_existing=True)
    assert row is not None and row.read_at is None


async def test_every_tab_is_told_of_an_archive_after_commit_with_the_new_count(session, users, doorbell):
    a, _ = users
    service = NotificationService(session)
    ids = await seed(service, a, 3, read=1)
    subscription = doorbell.hub.subscribe(a, maxsize=10)
    _, state = await service.archive(a, ids[2])
    assert await subscription.next(0.05) is None  # not before commit
    await session.commit()
    message = await subscription.next(1)
    assert message == {
        "type": "archive",
        "user": a,
        "ids": [ids[2]],
        "archived": True,
        "unread_count": 1,
        "seq": 3,
        "version": state.version,
    }
    await service.archive_read(a)
    await session.commit()
    message = await subscription.next(1)
    assert (message["type"], message["ids"], message["archived"]) == ("archive", [ids[0]], True)
    assert message["version"] == state.version + 1
    await service.unarchive(a, ids[2])
    await session.rollback()
    assert await subscription.next(0.05) is None  # a rolled-back change tells nobody
    subscription.close()


async def test_a_stream_sends_the_archive_live_and_skips_archived_items_when_it_replays(engine, session, users):
    a, _ = users
    service = NotificationService(session)
    ids = await seed(service, a, 3)
    await service.archive(a, ids[1])
    await session.commit()
    hub = Hub()
    stream = InboxStream(
        user_id=a,
        last_seq=0,
        subscription=hub.subscribe(a, 16),
        sessionmaker=create_sessionmaker(engine),
        config=StreamConfig(heartbeat_seconds=60),
    )
    events = stream.events()
    replayed = [await anext(events) for _ in range(3)]
    assert [(e.kind, e.seq) for e in replayed] == [("notification", 1), ("notification", 3), ("count", 3)]
    assert replayed[2].payload["unread_count"] == 2
    hub.deliver(
        {"type": "archive", "user": a, "ids": [ids[0]], "archived": True, "unread_count": 1, "seq": 3, "version": 99}
    )
    live = await asyncio.wait_for(anext(events), 5)
    assert (live.kind, dict(live.payload)) == (
        "archive",
        {"ids": [ids[0]], "archived": True, "unread_count": 1, "seq": 3, "version": 99},
    )
    await events.aclose()


# --- the JSON API --------------------------------------------------------------------------------


async def test_the_api_archives_unarchives_and_archives_all_read(client, session):
    user, token = await register(client)
    service = NotificationService(session)
    ids = await seed(service, user["id"], 4, read=2)
    headers = bearer(token)

    archived = await client.post(f"/api/v1/notifications/{ids[3]}/archive", headers=headers)
    assert archived.status_code == 200, archived.text
    body = archived.json()
    assert body["unread_count"] == 1 and body["notification"]["archived_at"] is not None
    listed = (await client.get("/api/v1/notifications", headers=headers)).json()
    assert [n["id"] for n in listed["items"]] == [ids[2], ids[1], ids[0]] and listed["unread_count"] == 1
    assert all(n["archived_at"] is None for n in listed["items"])
    only_archived = (await client.get("/api/v1/notifications?status=archived", headers=headers)).json()
    assert [n["id"] for n in only_archived["items"]] == [ids[3]]
    count = (await client.get("/api/v1/notifications/unread_count", headers=headers)).json()
    assert count["unread_count"] == 1

    unarchived = await client.post(f"/api/v1/notifications/{ids[3]}/unarchive", headers=headers)
    assert unarchived.status_code == 200 and unarchived.json()["unread_count"] == 2
    assert unarchived.json()["notification"]["archived_at"] is None

    swept = await client.post("/api/v1/notifications/archive_read", headers=headers)
    assert swept.status_code == 200 and swept.json() == {"archived": 2, "unread_count": 2}
    partial = await client.post("/api/v1/notifications/archive_read", json={"up_to_seq": 0}, headers=headers)
    assert partial.json() == {"archived": 0, "unread_count": 2}
    archived_now = (await client.get("/api/v1/notifications?status=archived", headers=headers)).json()
    assert [n["id"] for n in archived_now["items"]] == [ids[1], ids[0]]


async def test_the_api_refuses_another_users_item_and_bad_input_and_changes_nothing(client, session):
    owner, owner_token = await register(client)
    _, stranger = await register(client)
    service = NotificationService(session)
    (mine,) = await seed(service, owner["id"], 1)
    for action in ("archive", "unarchive"):
        response = await client.post(f"/api/v1/notifications/{mine}/{action}", headers=bearer(stranger))
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert (await client.post(f"/api/v1/notifications/{mine}/{action}")).status_code == 401
        for bad in ("abc", "0", "99999999999"):
            refused = await client.post(f"/api/v1/notifications/{bad}/{action}", headers=bearer(owner_token))
            assert 400 <= refused.status_code < 500 and refused.status_code != 401, (action, bad, refused.text)
    for body in ({"up_to_seq": -1}, {"up_to_seq": "x"}, {"up_to_seq": 2**40}):
        refused = await client.post("/api/v1/notifications/archive_read", json=body, headers=bearer(owner_token))
        assert refused.status_code in (400, 422), (body, refused.text)
    not_json = await client.post(
        "/api/v1/notifications/archive_read",
        content=b"{",
        headers={**bearer(owner_token), "content-type": "application/json"},
    )
    assert not_json.status_code == 400
    row = await session.scalar(select(Notification).where(Notification.id == mine))
    assert row is not None and row.archived_at is None


# --- the pages -----------------------------------------------------------------------------------


async def signed_in_browser(client, session, unread: int = 0, read: int = 0) -> tuple[int, list[int], dict]:
    """A browser session (cookie and CSRF header) with `read` read then `unread` unread items."""
    await register_in_browser(client, "pages@example.com")
    me = (await client.get("/api/v1/me")).json()
    service = NotificationService(session)
    ids = await seed(service, me["id"], read + unread, read=read)
    await session.rollback()
    headers = {"x-csrftoken": client.cookies["tidings_csrf"], "HX-Request": "true"}
    return me["id"], ids, headers


async def test_the_dropdown_shows_the_unread_count_and_how_many_more_unread_do_not_fit(client, session):
    _, _, htmx = await signed_in_browser(client, session, unread=14, read=2)
    panel = await client.post("/notifications/panel", headers=htmx)
    assert panel.status_code == 200
    assert 'data-panel-unread-count="14"' in panel.text and ">14 unread<" in panel.text
    assert 'href="/notifications?status=unread"' in panel.text and ">4 more unread<" in panel.text
    assert json.loads(panel.headers["hx-trigger"])["tidings:count"]["unread_count"] == 14
    assert 'data-section="earlier"' in panel.text  # present, hidden while empty, for items read later


async def test_the_dropdown_archives_one_item_and_all_read_ones(client, session):
    user_id, ids, htmx = await signed_in_browser(client, session, unread=2, read=2)
    archived = await client.post(f"/notifications/{ids[3]}/archive", headers=htmx)
    assert archived.status_code == 200
    assert json.loads(archived.headers["hx-trigger"])["tidings:count"]["unread_count"] == 1
    swept = await client.post("/notifications/archive_read", data={"up_to_seq": "4"}, headers=htmx)
    assert swept.status_code == 200 and 'id="notif-heading"' in swept.text
    assert f'data-notification-id="{ids[2]}"' in swept.text
    for gone in (ids[0], ids[1], ids[3]):
        assert f'data-notification-id="{gone}"' not in swept.text
    assert await NotificationService(session).unread_count(user_id) == 1
    await session.rollback()
    refused = await client.post("/notifications/abc/archive", headers=htmx)
    assert 400 <= refused.status_code < 500
    bad_seq = await client.post("/notifications/archive_read", data={"up_to_seq": "-3"}, headers=htmx)
    assert bad_seq.status_code in (400, 422)


async def test_the_inbox_page_keeps_its_filters_and_loads_older_pages_as_it_scrolls(client, session):
    _, ids, htmx = await signed_in_browser(client, session, unread=25, read=5)
    page = await client.get("/notifications?status=unread")
    assert page.status_code == 200
    assert page.text.count('class="notif-item') == 20
    # The next page loads when its placeholder is revealed; without script it is a link.
    more = '/notifications/items?status=unread&amp;type=&amp;cursor=11"'
    assert more in page.text and 'hx-trigger="revealed"' in page.text
    assert 'href="/notifications?status=unread&amp;type=&amp;cursor=11"' in page.text
    assert '<option value="archived"' in page.text
    older = await client.get("/notifications/items?status=unread&type=&cursor=11", headers=htmx)
    assert older.status_code == 200 and "<html" not in older.text
    assert older.text.count('class="notif-item') == 5 and 'hx-trigger="revealed"' not in older.text
    for bad in ("status=maybe", "cursor=abc", "type=gossip"):
        assert (await client.get(f"/notifications/items?{bad}", headers=htmx)).status_code in (400, 422), bad

    # "Archive all read" from the inbox page answers the list again, under the same filter.
    swept = await client.post(
        "/notifications/archive_read",
        data={"up_to_seq": "30", "view": "inbox", "status": "archived", "type": ""},
        headers=htmx,
    )
    assert swept.status_code == 200 and "<html" not in swept.text
    assert swept.text.count('class="notif-item') == 5
    # Without script the form lands back on the same filtered page.
    plain = await post_form(
        client, "/notifications/archive_read", {"view": "inbox", "status": "read", "type": "general"}
    )
    assert plain.status_code in (302, 303) and plain.headers["location"] == "/notifications?status=read&type=general"
    odd = await post_form(client, "/notifications/read_all", {"status": "//evil.example", "type": "<x>"})
    assert odd.headers["location"] == "/notifications"
    archived_page = await client.get("/notifications?status=archived")
    assert archived_page.text.count('class="notif-item') == 5 and "Unarchive" in archived_page.text
    assert ids
