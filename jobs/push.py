"""Web Push: one push per job to each of a user's devices (README "Web Push").

Enqueued through the outbox (`send_push`, kwargs `user_id` and `notification_ids`) by whatever
decided that these notifications go out by push now. The job reads what is still worth telling,
sends with no transaction open (each device in a thread, with a timeout), then records in one
short transaction which devices took it and drops the ones their push service says are gone.
A device that failed otherwise makes the job raise, so Dramatiq retries it; the devices already
reached are recorded against the outbox row and not sent to again.
"""

from __future__ import annotations

import asyncio
import logging

import dramatiq

from jobs import runtime
from jobs.broker import broker as _broker  # noqa: F401 - configures Dramatiq before the actors below
from webapp import metrics
from webapp.db import utcnow
from webapp.notifications.models import Notification
from webapp.push import transport
from webapp.push.messages import build_message
from webapp.push.services import PushService
from webapp.signed_links import open_link_token

log = logging.getLogger("tidings.push")
ICON_PATH = "/static/icons/push-192.png"  # a bitmap: not every platform shows an SVG notification icon
# Past the HTTP timeout itself: the thread's own start-up and encryption.
THREAD_GRACE_SECONDS = 5.0


class PushNotDelivered(Exception):
    """Some devices could not be reached for a reason that may pass: the job runs again."""


@dramatiq.actor(queue_name="notifications")
async def send_push(user_id: int, notification_ids: list[int], outbox_id: int | None = None) -> None:
    settings = runtime.settings()
    if not settings.push_enabled or settings.vapid_private_key is None:
        async with runtime.session(outbox_id):
            return  # push is off (production without VAPID keys): nothing to do, the row is done
    now = utcnow()
    async with runtime.session() as db:
        pending = await PushService(db, settings.push_allowed_hosts).pending(user_id, notification_ids, outbox_id, now)
        devices = [transport.Device(s.id, s.endpoint, s.p256dh, s.auth) for s in pending.subscriptions]

    def open_url(item: Notification) -> str:
        return f"{settings.public_url}/n/{open_link_token(user_id, item.id, settings.secret_key)}"

    message = build_message(
        pending.items,
        now=now,
        event_starts=pending.event_starts,
        open_url=open_url,
        summary_url=f"{settings.public_url}/notifications",
        icon_url=settings.public_url + ICON_PATH,
    )
    if message is None or not devices:
        async with runtime.session(outbox_id):
            return  # read, archived, obsolete or expired meanwhile; or no device to tell
    key = transport.Vapid02Key(settings.vapid_private_key, settings.vapid_subject)

    async def one(device: transport.Device) -> transport.Outcome:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(
                    transport.send, device, message, key, settings.push_allowed_hosts, settings.push_timeout_seconds
                ),
                settings.push_timeout_seconds + THREAD_GRACE_SECONDS,
            )
        except TimeoutError:
            metrics.PUSH_FAILED.labels("timeout").inc()
            return "failed"

    outcomes = dict(zip((d.id for d in devices), await asyncio.gather(*(one(d) for d in devices)), strict=True))
    sent = [device_id for device_id, outcome in outcomes.items() if outcome == "sent"]
    gone = [device_id for device_id, outcome in outcomes.items() if outcome == "gone"]
    failed = [device_id for device_id, outcome in outcomes.items() if outcome == "failed"]
    # Done with this job only when no device is left to retry; otherwise record what went out
    # and let Dramatiq run it again.
    async with runtime.session(None if failed else outbox_id) as db:
        service = PushService(db, settings.push_allowed_hosts)
        await service.record_sent(outbox_id, sent, utcnow())
        removed = await service.remove_gone(gone)
        await db.commit()
    if removed:
        metrics.PUSH_SUBSCRIPTIONS_REMOVED.inc(removed)
        log.info("removed %s push subscription(s) their push service no longer knows", removed)
    if failed:
        raise PushNotDelivered(f"{len(failed)} of {len(devices)} device(s) not reached; retrying")
