"""Expiry: an item past its `expires_at` (a reminder once its event has started) leaves the counts,
shows as expired in the dropdown, the inbox and the API, and the open tabs hear the lower count."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.api import settled_tick
from tests.integration.test_notification_archive import signed_in_browser
from webapp.db import create_sessionmaker, utcnow
from webapp.notifications.services import NewNotification, NotificationService
from webapp.realtime.doorbell import current_doorbell


def reminder(user_id: int, title: str, expires_in: timedelta) -> NewNotification:
    return NewNotification(
        user_id=user_id, type="event_reminder", title=title, expires_at=utcnow().replace(microsecond=0) + expires_in
    )


def item_html(page: str, title: str) -> str:
    match = re.search(r'<li class="notif-item[^"]*"[^>]*data-title="' + re.escape(title) + r'".*?</li>', page, re.S)
    assert match, f"no item {title!r}"
    return match.group(0)


async def test_an_expired_item_shows_as_expired_under_earlier_and_in_the_api(client, session):
    user_id, _, htmx = await signed_in_browser(client, session)
    service = NotificationService(session)
    await service.notify_many(
        [
            reminder(user_id, "Jazz starts in 30 minutes", timedelta(minutes=-5)),
            reminder(user_id, "Opera starts in 30 minutes", timedelta(minutes=25)),
        ]
    )
    await session.commit()

    panel = await client.post("/notifications/panel", headers=htmx)
    assert 'data-panel-unread-count="1"' in panel.text
    unread_section, earlier_section = panel.text.split('data-section="earlier"', 1)
    assert "Opera starts" in unread_section and "Jazz starts" not in unread_section
    jazz = item_html(earlier_section, "Jazz starts in 30 minutes")
    assert "expired" in jazz.lower() and "is-unread" not in jazz and "is-expired" in jazz

    inbox = await client.get("/notifications")
    assert "is-expired" in item_html(inbox.text, "Jazz starts in 30 minutes")
    assert "is-expired" not in item_html(inbox.text, "Opera starts in 30 minutes")
    unread_only = await client.get("/notifications?status=unread")
    assert "Jazz starts" not in unread_only.text and "Opera starts" in unread_only.text

    listed = (await client.get("/api/v1/notifications")).json()["items"]
    by_title = {item["title"]: item for item in listed}
    assert by_title["Jazz starts in 30 minutes"]["expired"] is True
    assert by_title["Opera starts in 30 minutes"]["expired"] is False
    assert by_title["Opera starts in 30 minutes"]["expires_at"] is not None
    assert (await client.get("/api/v1/notifications/unread_count")).json()["unread_count"] == 1


async def test_the_tick_after_an_item_expired_tells_its_tabs_the_lower_count(engine, users, doorbell):
    a, b = users
    maker = create_sessionmaker(engine)
    async with maker() as session:
        service = NotificationService(session)
        await service.notify_many(
            [
                reminder(a, "soon over", timedelta(minutes=1)),
                NewNotification(user_id=a, type="general", title="stays"),
                NewNotification(user_id=b, type="general", title="never expires"),
            ]
        )
        await session.commit()
        before = await service.state(a)
        await session.rollback()
    assert before.unread_count == 2
    subscription_a = doorbell.hub.subscribe(a, maxsize=10)
    subscription_b = doorbell.hub.subscribe(b, maxsize=10)

    told = await settled_tick(maker, now=utcnow() + timedelta(minutes=2))
    assert told.expiries_told == 1
    count = await subscription_a.next(1)
    assert count is not None and count["type"] == "count"
    assert count["unread_count"] == 1 and count["version"] > before.version
    assert await subscription_b.next(0.1) is None

    # The next tick has nothing new to tell: an expiry is announced once.
    assert (await settled_tick(maker, now=utcnow() + timedelta(minutes=3))).expiries_told == 0
    assert await subscription_a.next(0.1) is None
    subscription_a.close()
    subscription_b.close()
    assert current_doorbell() is doorbell
