"""Email for what was missed: one email per outbox row the scheduler wrote (one user, their due
rows). The rows are checked and the attempt marked in one transaction, the mail server is called
outside any, and the rows are marked sent in a last transaction that also completes the outbox
row. A run killed between the server's acceptance and that commit sends the email again, with
the same Message-ID (README, "Email")."""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq

from jobs import runtime
from jobs.broker import broker as _broker  # noqa: F401 - configures Dramatiq before the actors below
from webapp.db import utcnow
from webapp.mail.compose import compose
from webapp.mail.transport import deliver
from webapp.notifications.offsite import SEND_EMAIL, finish_email, release_email, start_email

log = logging.getLogger("tidings.email")


def send_lease(smtp_timeout_seconds: float) -> timedelta:
    """How long an attempt owns its rows: a second run of the same email waits this long after
    the first started before it may send (the first may still be talking to the server)."""
    return timedelta(seconds=smtp_timeout_seconds * 4 + 10)


@dramatiq.actor(actor_name=SEND_EMAIL, queue_name="email")
async def send_email(user_id: int, delivery_ids: list[int], outbox_id: int | None = None) -> None:
    settings = runtime.settings()
    now = utcnow()
    async with runtime.session() as session:
        batch = await start_email(session, user_id, delivery_ids, now, send_lease(settings.smtp_timeout_seconds))
        await session.commit()
    if batch is not None:
        try:
            await deliver(settings, compose(settings, batch))
        except Exception as exc:
            log.warning("email for user %s not sent (%s); it will be retried", user_id, type(exc).__name__)
            # Refused or unreachable: nothing was sent. The job is retried (Dramatiq, then the
            # outbox sweep); the rows stay unsent and free for that retry.
            async with runtime.session() as session:
                await release_email(session, [item.delivery_id for item in batch.items])
                await session.commit()
            raise
    async with runtime.session(outbox_id) as session:
        if batch is not None:
            await finish_email(session, [item.delivery_id for item in batch.items], utcnow())
        await session.commit()
