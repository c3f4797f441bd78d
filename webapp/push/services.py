"""Web Push subscriptions: the rules for storing them, and what a push job may send.

The server POSTs to whatever endpoint a subscription names, so an endpoint is accepted only on
an allow-listed push service (PUSH_ALLOWED_HOSTS, webapp.push_config), and its keys only when
they are what a browser makes (a P-256 point and a 16-byte secret): anything else would fail at
every send. Another user's subscription is a 404, as every other object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import insert_on_conflict, utcnow
from webapp.errors import NotFound, ValidationFailed
from webapp.events.models import Event
from webapp.notifications.models import Notification
from webapp.push.models import DEVICE_MAX, ENDPOINT_MAX, PushDelivery, PushSubscription
from webapp.push_config import PushHosts, b64url_decode, is_p256_point

AUTH_SECRET_BYTES = 16
# Every push goes to each device: a cap keeps one account from multiplying the server's sends. A
# device beyond it replaces the user's oldest one (an old phone long gone, most likely).
MAX_DEVICES_PER_USER = 20


@dataclass(frozen=True, slots=True)
class PendingPush:
    """What one push job still has to do: the items worth telling and the devices not reached."""

    items: list[Notification]
    subscriptions: list[PushSubscription]
    event_starts: dict[int, datetime]


class PushService:
    def __init__(self, session: AsyncSession, allowed_hosts: PushHosts) -> None:
        self.session = session
        self.allowed_hosts = allowed_hosts

    def check(self, endpoint: str, p256dh: str, auth: str) -> None:
        """ValidationFailed naming each field that no push service or browser would make."""
        problems: dict[str, str] = {}
        if len(endpoint) > ENDPOINT_MAX or not self.allowed_hosts.allows(endpoint):
            problems["endpoint"] = "must be an https URL of a known push service"
        try:
            if not is_p256_point(b64url_decode(p256dh)):
                raise ValueError
        except ValueError:
            problems["keys.p256dh"] = "must be a P-256 public key: 65 bytes in base64url"
        try:
            if len(b64url_decode(auth)) != AUTH_SECRET_BYTES:
                raise ValueError
        except ValueError:
            problems["keys.auth"] = f"must be {AUTH_SECRET_BYTES} bytes in base64url"
        if problems:
            raise ValidationFailed(problems)

    async def subscribe(self, user_id: int, endpoint: str, p256dh: str, auth: str, user_agent: str) -> PushSubscription:
        """Stores the device, or updates it: an endpoint is one browser profile, so one already
        known (re-subscribed keys, or another account signed in on that browser) moves to this
        user with its new keys; the one before no longer gets this browser's pushes."""
        self.check(endpoint, p256dh, auth)
        values = {
            "user_id": user_id,
            "endpoint": endpoint,
            "p256dh": p256dh.rstrip("="),
            "auth": auth.rstrip("="),
            "device": device_label(user_agent),
            "created_at": utcnow(),
        }
        changed = {k: v for k, v in values.items() if k != "endpoint"}
        statement = (
            insert_on_conflict(self.session)(PushSubscription)
            .values(**values)
            .on_conflict_do_update(index_elements=["endpoint"], set_={**changed, "last_success_at": None})
            .returning(PushSubscription.id)
        )
        subscription_id = (await self.session.execute(statement)).scalar_one()
        await self._keep_newest(user_id)
        subscription = await self.session.get(PushSubscription, subscription_id, populate_existing=True)
        assert subscription is not None
        return subscription

    async def _keep_newest(self, user_id: int) -> None:
        kept = (
            select(PushSubscription.id)
            .where(PushSubscription.user_id == user_id)
            .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc())
            .limit(MAX_DEVICES_PER_USER)
        )
        await self.session.execute(
            delete(PushSubscription).where(
                PushSubscription.user_id == user_id, PushSubscription.id.not_in(kept.scalar_subquery())
            )
        )

    async def listing(self, user_id: int) -> list[PushSubscription]:
        rows = await self.session.scalars(
            select(PushSubscription).where(PushSubscription.user_id == user_id).order_by(PushSubscription.id)
        )
        return list(rows)

    async def unsubscribe(self, user_id: int, subscription_id: int) -> None:
        result = await self.session.execute(
            delete(PushSubscription).where(PushSubscription.id == subscription_id, PushSubscription.user_id == user_id)
        )
        if not getattr(result, "rowcount", 0):
            raise NotFound("No such push subscription.")

    async def remove_gone(self, subscription_ids: Sequence[int]) -> int:
        """Devices whose push service answered 404 or 410: the browser dropped the subscription."""
        if not subscription_ids:
            return 0
        result = await self.session.execute(delete(PushSubscription).where(PushSubscription.id.in_(subscription_ids)))
        return int(getattr(result, "rowcount", 0) or 0)

    async def pending(
        self, user_id: int, notification_ids: Sequence[int], outbox_id: int | None, now: datetime
    ) -> PendingPush:
        """The listed items still worth a push (the user's own, unread, not archived, obsolete or
        expired) and the user's devices this job has not reached yet."""
        items = list(
            await self.session.scalars(
                select(Notification)
                .where(
                    Notification.user_id == user_id,
                    Notification.id.in_(list(notification_ids)),
                    Notification.read_at.is_(None),
                    Notification.archived_at.is_(None),
                    Notification.obsolete_at.is_(None),
                    (Notification.expires_at.is_(None)) | (Notification.expires_at > now),
                )
                .order_by(Notification.seq)
            )
        )
        if not items:
            return PendingPush([], [], {})
        reached = select(PushDelivery.subscription_id).where(PushDelivery.outbox_id == outbox_id)
        query = select(PushSubscription).where(PushSubscription.user_id == user_id).order_by(PushSubscription.id)
        if outbox_id is not None:
            query = query.where(PushSubscription.id.not_in(reached))
        subscriptions = list(await self.session.scalars(query))
        event_ids = {event_id for n in items if (event_id := event_of(n)) is not None}
        starts: dict[int, datetime] = {}
        if event_ids:
            rows = await self.session.execute(select(Event.id, Event.starts_at).where(Event.id.in_(event_ids)))
            starts = {event_id: starts_at for event_id, starts_at in rows}
        return PendingPush(items, subscriptions, starts)

    async def record_sent(self, outbox_id: int | None, subscription_ids: Sequence[int], now: datetime) -> None:
        """The devices that accepted this job's push: not sent to again when the job is retried."""
        if not subscription_ids:
            return
        await self.session.execute(
            update(PushSubscription).where(PushSubscription.id.in_(subscription_ids)).values(last_success_at=now)
        )
        if outbox_id is not None:
            self.session.add_all(
                PushDelivery(outbox_id=outbox_id, subscription_id=s, sent_at=now) for s in subscription_ids
            )


def event_of(notification: Notification) -> int | None:
    """The event a notification is about, if any: its subject, or the event its data names."""
    if notification.subject_kind == "event" and notification.subject_id is not None:
        return notification.subject_id
    event_id = (notification.data or {}).get("event_id")
    return event_id if isinstance(event_id, int) and not isinstance(event_id, bool) else None


_BROWSERS = (  # the first that matches names the browser: Edge and Opera also say "Chrome"
    ("Edg", "Edge"),
    ("OPR", "Opera"),
    ("SamsungBrowser", "Samsung Internet"),
    ("Firefox", "Firefox"),
    ("FxiOS", "Firefox"),
    ("CriOS", "Chrome"),
    ("Chromium", "Chromium"),
    ("Chrome", "Chrome"),
    ("Safari", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)


def device_label(user_agent: str) -> str:
    """ "Firefox on Android": enough for a person to tell their devices apart in the list."""
    browser = next((name for token, name in _BROWSERS if f"{token}/" in user_agent), "A browser")
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    return (f"{browser} on {system}" if system else browser)[:DEVICE_MAX]
