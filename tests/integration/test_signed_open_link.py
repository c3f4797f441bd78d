"""GET /n/<token>, the signed open link of emails and pushes: it opens one notification of one
user without a login (seen and read, then its page), creates no session, and a link that is
bad, expired, for another purpose, another user's or for a deleted notification changes nothing.
And the development outbox (/dev/mail), which production does not have."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import TEST_SECRET
from tests.crowd import UNUSABLE_PASSWORD_HASH
from tidings.app import create_app
from webapp.auth.models import User
from webapp.db import utcnow
from webapp.mail.compose import compose
from webapp.mail.transport import deliver
from webapp.notifications.models import Notification
from webapp.notifications.offsite import EmailBatch, EmailItem
from webapp.notifications.services import NewNotification, NotificationService
from webapp.signed_links import open_link_token, sign_link, unsubscribe_token


async def person_with_notification(session: AsyncSession, email: str) -> tuple[int, int]:
    user = User(email=email, name="Ada", password_hash=UNUSABLE_PASSWORD_HASH)
    session.add(user)
    await session.flush()
    [created] = await NotificationService(session).notify_many(
        [NewNotification(user_id=user.id, type="general", title="Doors at seven", url="/events/3")]
    )
    await session.commit()
    return user.id, created.id


async def state(session: AsyncSession, notification_id: int) -> tuple[bool, bool] | None:
    """(seen, read) of a notification, None when it is gone."""
    row = (
        await session.execute(
            select(Notification.seen_at, Notification.read_at).where(Notification.id == notification_id)
        )
    ).first()
    await session.rollback()  # SQLite: never hold a transaction open against the app
    return None if row is None else (row[0] is not None, row[1] is not None)


async def test_a_signed_link_opens_the_notification_without_a_login_and_makes_no_session(
    client: Any, session: AsyncSession
) -> None:
    user_id, notification_id = await person_with_notification(session, "ada@example.com")
    opened = await client.get(f"/n/{open_link_token(user_id, notification_id, TEST_SECRET)}")
    assert opened.status_code in (302, 303) and opened.headers["location"] == "/events/3"
    assert await state(session, notification_id) == (True, True)
    assert "tidings_access" not in opened.headers.get("set-cookie", "")
    assert "tidings_refresh" not in opened.headers.get("set-cookie", "")
    again = await client.get(f"/n/{open_link_token(user_id, notification_id, TEST_SECRET)}")
    assert again.status_code in (302, 303)  # a second click still leads there


async def test_bad_expired_foreign_and_dangling_links_change_nothing(client: Any, session: AsyncSession) -> None:
    user_id, notification_id = await person_with_notification(session, "ada@example.com")
    other_id, others = await person_with_notification(session, "bob@example.com")
    refused = {
        "garbage": ("not-a-token", 400),
        "wrong key": (open_link_token(user_id, notification_id, "another-secret-key-of-enough-length-000"), 400),
        "expired": (sign_link(user_id, "open", notification_id, TEST_SECRET, timedelta(minutes=-1)), 400),
        "unsubscribe link": (unsubscribe_token(user_id, "general", TEST_SECRET), 400),
        "not an id": (sign_link(user_id, "open", "abc", TEST_SECRET, timedelta(days=1)), 400),
        "another user's notification": (open_link_token(user_id, others, TEST_SECRET), 404),
    }
    for label, (token, status) in refused.items():
        response = await client.get(f"/n/{token}")
        assert response.status_code == status, label
        assert "text/html" in response.headers["content-type"], label
    assert await state(session, notification_id) == (False, False)
    assert await state(session, others) == (False, False)
    await session.execute(delete(Notification).where(Notification.id == notification_id))
    await session.commit()
    gone = await client.get(f"/n/{open_link_token(user_id, notification_id, TEST_SECRET)}")
    assert gone.status_code == 404
    assert other_id != user_id


@pytest.fixture
def empty_outbox(settings: Any) -> Any:
    """The development outbox folder, emptied (it is the test run's, shared by its tests)."""
    settings.mail_dir.mkdir(parents=True, exist_ok=True)
    for path in settings.mail_dir.iterdir():
        path.unlink()
    return settings.mail_dir


def a_batch(user_id: int, notification_id: int) -> EmailBatch:
    item = EmailItem(
        1, notification_id, "booking_confirmed", "Booking confirmed: <b>Gala</b>", "", "/", utcnow(), False
    )
    return EmailBatch(user_id, "ada@example.com", "Ada", "UTC", (item,))


async def test_development_mail_is_listed_and_shown_at_dev_mail(client: Any, settings: Any, empty_outbox: Any) -> None:
    await deliver(settings, compose(settings, a_batch(1, 1)))
    listing = await client.get("/dev/mail/")
    assert listing.status_code == 200
    assert "Booking confirmed: &lt;b&gt;Gala&lt;/b&gt;" in listing.text  # escaped like every page
    [name] = [p.name for p in settings.mail_dir.iterdir() if p.suffix == ".eml"]
    assert f'href="/dev/mail/{name}"' in listing.text
    page = await client.get(f"/dev/mail/{name}")
    assert page.status_code == 200 and "/n/" in page.text and "Ada &lt;ada@example.com&gt;" in page.text
    html = await client.get(f"/dev/mail/{name}/html")
    assert html.status_code == 200 and "Booking confirmed: &lt;b&gt;Gala&lt;/b&gt;" in html.text
    assert (await client.get("/dev/mail/../../etc/passwd")).status_code == 404
    assert (await client.get("/dev/mail/0123456789abcdef0123456789abcdef.eml")).status_code == 404


async def test_production_has_no_dev_mail(settings: Any, empty_outbox: Any) -> None:
    await deliver(settings, compose(settings, a_batch(1, 1)))
    [name] = [p.name for p in settings.mail_dir.iterdir() if p.suffix == ".eml"]
    production = replace(settings, env="production")
    async with AsyncTestClient(create_app(production), base_url="http://127.0.0.1:8000") as client:
        for path in ("/dev/mail/", f"/dev/mail/{name}", f"/dev/mail/{name}/html"):
            assert (await client.get(path)).status_code == 404, path
