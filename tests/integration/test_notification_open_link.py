"""GET /notifications/{id}/open marks the notification read only when the browser says the click came
from Tidings itself (fetch metadata, or a same-origin Referer where a browser sends none): a link
or an image on another site can send the user there, but cannot change their inbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.integration.pages import register_in_browser
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService

ORIGIN = "http://127.0.0.1:8000"  # the test client's base URL


async def signed_in_with_a_notification(client: Any, session: AsyncSession) -> int:
    await register_in_browser(client, "opener@example.com")
    me = (await client.get("/api/v1/me")).json()
    [created] = await NotificationService(session).notify_many(
        [NewNotification(user_id=me["id"], type="general", title="Doors at seven", url="/bookings")]
    )
    await session.commit()
    return created.id


async def is_read(session: AsyncSession, notification_id: int) -> bool:
    read_at = await session.scalar(select(Notification.read_at).where(Notification.id == notification_id))
    await session.rollback()  # SQLite: never hold a transaction open against the app
    return read_at is not None


async def test_a_cross_site_open_follows_the_link_and_changes_nothing(client: Any, session: AsyncSession) -> None:
    notification_id = await signed_in_with_a_notification(client, session)
    cross_site_requests: list[dict[str, str]] = [
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Referer": "https://evil.example/page"},
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
        {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate"},  # a sibling subdomain is not us
        {"Referer": "https://evil.example/page"},  # a browser without fetch metadata
        {},  # nothing says where it came from (e.g. a page with Referrer-Policy: no-referrer)
    ]
    for headers in cross_site_requests:
        opened = await client.get(f"/notifications/{notification_id}/open", headers=headers)
        assert opened.status_code in (302, 303), headers
        assert opened.headers["location"] == "/bookings", headers
        assert not await is_read(session, notification_id), f"marked read by {headers}"
    count = (await client.get("/api/v1/notifications/unread_count")).json()
    assert count["unread_count"] == 1


async def test_an_open_from_tidings_itself_marks_read(client: Any, session: AsyncSession) -> None:
    notification_id = await signed_in_with_a_notification(client, session)
    opened = await client.get(
        f"/notifications/{notification_id}/open",
        headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"},
    )
    assert opened.status_code in (302, 303) and opened.headers["location"] == "/bookings"
    assert await is_read(session, notification_id)
    await mark_unread(client, notification_id)
    # Typed into the address bar or opened from a bookmark: the user's own doing.
    await client.get(f"/notifications/{notification_id}/open", headers={"Sec-Fetch-Site": "none"})
    assert await is_read(session, notification_id)
    await mark_unread(client, notification_id)
    # A browser without fetch metadata, following a link on one of our pages (Referrer-Policy: same-origin).
    await client.get(f"/notifications/{notification_id}/open", headers={"Referer": f"{ORIGIN}/notifications"})
    assert await is_read(session, notification_id)


async def test_another_users_notification_is_not_found_from_anywhere(client: Any, session: AsyncSession) -> None:
    notification_id = await signed_in_with_a_notification(client, session)
    client.cookies.clear()
    await register_in_browser(client, "stranger@example.com")
    for site in ("same-origin", "cross-site"):
        opened = await client.get(f"/notifications/{notification_id}/open", headers={"Sec-Fetch-Site": site})
        assert opened.status_code == 404, site
    assert not await is_read(session, notification_id)


async def mark_unread(client: Any, notification_id: int) -> None:
    csrf = {"x-csrftoken": client.cookies["tidings_csrf"]}
    response = await client.post(f"/api/v1/notifications/{notification_id}/unread", headers=csrf)
    assert response.status_code == 200, response.text
