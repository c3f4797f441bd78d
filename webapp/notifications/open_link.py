"""The signed open link of an email or a push (`/n/<token>`): opens one notification of one user
without a login step, marking it seen and read. It creates no session: the page it leads to
still asks for a login."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import utcnow
from webapp.errors import DomainError, NotFound
from webapp.notifications.models import Notification
from webapp.notifications.services import NotificationService
from webapp.signed_links import read_link
from webapp.validation import is_row_id


class LinkInvalid(DomainError):
    status_code = 400
    code = "link_invalid"


def local_target(url: str) -> str:
    """Only a path of this site: a notification's url never sends anyone elsewhere."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


async def open_by_link(session: AsyncSession, token: str, secret_key: str) -> str:
    """In the caller's transaction: marks the link's notification seen and read (every tab of
    its user is told) and answers where to go. A bad, expired or foreign link changes nothing."""
    claims = read_link(token, "open", secret_key)
    if claims is None or not claims.target.isdigit() or not is_row_id(int(claims.target)):
        raise LinkInvalid("This link is not valid or has expired. Log in to see your notifications.")
    notification_id = int(claims.target)
    # Looked up before anything is locked or written: a link of a deleted account or notification,
    # or one naming someone else's, is simply not found.
    owner = await session.scalar(select(Notification.user_id).where(Notification.id == notification_id))
    if owner is None or owner != claims.user_id:
        raise NotFound("This notification no longer exists.")
    notification, _ = await NotificationService(session).mark_read(claims.user_id, notification_id)
    if notification.seen_at is None:
        await session.execute(
            update(Notification)
            .where(Notification.id == notification.id, Notification.seen_at.is_(None))
            .values(seen_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return local_target(notification.url)
