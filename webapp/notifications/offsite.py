"""Telling people off the page: push and email for what they have not seen.

Three steps, each in its own unit of work:

1. `plan_deliveries`, inside `NotificationService.notify_many`: asks the channel plan once per
   (type, event) of the batch and writes one `OffsiteDelivery` per (notification, push/email)
   with the time it is due. Push and immediate email types are due now (or when quiet hours
   end); every other email waits for the digest: `EMAIL_DIGEST_DELAY_MINUTES` after the
   notification, or later if quiet hours say so.
2. `claim_due`, in a scheduler tick: claims the due rows (SKIP LOCKED, so schedulers never share
   one) and writes one outbox row per user and channel: `send_push` or `send_email`. All of a
   user's due email rows thus go in one email.
3. `start_email` / `finish_email`, in the `send_email` job: before talking to the mail server,
   drops what no longer needs telling and marks the attempt; after the server accepted, marks
   the rows sent. A job run again sends only what was not marked sent (see README, "Email").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Boolean, String, Table, bindparam, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.db import UTCDateTime, among, on_postgresql
from webapp.events.models import Event
from webapp.notifications.models import Notification
from webapp.notifications.offsite_models import OffsiteDelivery
from webapp.outbox.services import enqueue_after_commit
from webapp.preferences.plan import IMMEDIATE_EMAIL_TYPES, plan_channels
from webapp.settings import get_settings

OFFSITE = cast(Table, OffsiteDelivery.__table__)
# Actors are named, not imported: services never import jobs (the outbox dispatches by name).
SEND_EMAIL = "send_email"
SEND_PUSH = "send_push"
# Users whose due rows one tick claims: a 10,000-recipient digest goes out over a few short ticks.
CLAIM_USERS = 2000
IN_CHUNK = 900
MAX_ARRAY = 10_000


class SendInProgress(RuntimeError):
    """Another run of the same email is talking to the mail server right now: try again later."""


def _event_of(row: Mapping[str, Any]) -> int | None:
    """The event a notification is about: its subject, or the event its data names (a booking's)."""
    if row.get("subject_kind") == "event" and row.get("subject_id"):
        return int(row["subject_id"])
    event_id = (row.get("data") or {}).get("event_id")
    return event_id if isinstance(event_id, int) and not isinstance(event_id, bool) else None


async def plan_deliveries(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], ids: Mapping[tuple[int, int], int], now: datetime
) -> int:
    """In the caller's transaction: the off-page rows of notifications just inserted (`rows` as
    inserted, `ids` by (user_id, seq)). One plan per (type, event), one INSERT per chunk.
    Returns how many rows were written."""
    settings = get_settings()
    digest_delay = timedelta(minutes=settings.email_digest_delay_minutes)
    groups: dict[tuple[str, int | None], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["type"], _event_of(row)), []).append(row)
    event_ids = sorted({event_id for _, event_id in groups if event_id is not None})
    starts: dict[int, datetime] = {}
    for i in range(0, len(event_ids), IN_CHUNK):
        chunk = event_ids[i : i + IN_CHUNK]
        found = await session.execute(select(Event.id, Event.starts_at).where(among(session, Event.id, chunk)))
        starts.update({event_id: starts_at for event_id, starts_at in found})
    # Rows that share (channel, digest, due time) are copied from the notifications just inserted
    # by one INSERT … SELECT per IN_CHUNK ids: the database does the per-row work, so a fan-out
    # chunk of 1,000 binds a list of ids rather than 1,000 rows of values.
    wanted: dict[tuple[str, bool, datetime], list[int]] = {}
    for (type_, event_id), group in groups.items():
        plans = await plan_channels(
            session,
            sorted({row["user_id"] for row in group}),
            type_,
            event_id=event_id,
            event_starts_at=starts.get(event_id) if event_id is not None else None,
            now=now,
        )
        immediate = type_ in IMMEDIATE_EMAIL_TYPES
        for row in group:
            plan = plans.get(row["user_id"])
            if plan is None:
                continue
            soonest = max(now, plan.deferred_until) if plan.deferred_until else now
            notification_id = ids[(row["user_id"], row["seq"])]
            if "push" in plan.channels:
                wanted.setdefault(("push", False, soonest), []).append(notification_id)
            if "email" in plan.channels and settings.email_enabled:
                due = soonest if immediate else max(row["created_at"] + digest_delay, soonest)
                wanted.setdefault(("email", not immediate, due), []).append(notification_id)
    columns = ["notification_id", "user_id", "channel", "digest", "due_at"]
    # PostgreSQL takes the ids as one array parameter: one statement text, prepared once, for any
    # number of ids. SQLite has no arrays: an IN list per IN_CHUNK ids.
    postgres = on_postgresql(session)
    size = MAX_ARRAY if postgres else IN_CHUNK
    written = 0
    for (channel, digest, due), notification_ids in wanted.items():
        for i in range(0, len(notification_ids), size):
            chunk = notification_ids[i : i + size]
            source = select(
                Notification.id,
                Notification.user_id,
                literal(channel, String),
                literal(digest, Boolean),
                literal(due, UTCDateTime),
            ).where(among(session, Notification.id, chunk))
            await session.execute(insert(OFFSITE).from_select(columns, source))
            written += len(chunk)
    return written


async def claim_due(session: AsyncSession, now: datetime, limit: int = CLAIM_USERS) -> int:
    """In the caller's transaction: claims every due row of up to `limit` users (those waiting
    longest first) and writes one outbox row per (user, channel), so a user's due rows are never
    split between two emails. Returns how many outbox rows were written."""
    due = (OFFSITE.c.claimed_at.is_(None), OFFSITE.c.due_at <= now)
    users = list(
        await session.scalars(
            select(OFFSITE.c.user_id)
            .where(*due)
            .group_by(OFFSITE.c.user_id)
            .order_by(func.min(OFFSITE.c.due_at), OFFSITE.c.user_id)
            .limit(limit)
        )
    )
    claimed: list[Any] = []
    for i in range(0, len(users), IN_CHUNK):
        claimed.extend(
            await session.execute(
                select(OFFSITE.c.id, OFFSITE.c.user_id, OFFSITE.c.channel, OFFSITE.c.notification_id)
                .where(*due, among(session, OFFSITE.c.user_id, users[i : i + IN_CHUNK]))
                .order_by(OFFSITE.c.id)
                .with_for_update(skip_locked=True)
            )
        )
    if not claimed:
        return 0
    groups: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for delivery_id, user_id, channel, notification_id in claimed:
        groups.setdefault((user_id, channel), []).append((delivery_id, notification_id))
    outbox_rows = []
    for (user_id, channel), members in sorted(groups.items()):
        if channel == "push":
            payload: dict[str, Any] = {"notification_ids": sorted(n for _, n in members)}
            outbox_rows.append((enqueue_after_commit(session, SEND_PUSH, user_id=user_id, **payload), members))
        else:
            payload = {"delivery_ids": sorted(d for d, _ in members)}
            outbox_rows.append((enqueue_after_commit(session, SEND_EMAIL, user_id=user_id, **payload), members))
    await session.flush()  # the outbox rows' ids
    await session.execute(
        update(OFFSITE)
        .where(OFFSITE.c.id == bindparam("delivery_id"))
        .values(claimed_at=now, outbox_id=bindparam("outbox_id"))
        .execution_options(synchronize_session=False),
        [{"delivery_id": d, "outbox_id": row.id} for row, members in outbox_rows for d, _ in members],
    )
    return len(outbox_rows)


@dataclass(frozen=True, slots=True)
class EmailItem:
    delivery_id: int
    notification_id: int
    type: str
    title: str
    body: str
    url: str
    created_at: datetime
    digest: bool


@dataclass(frozen=True, slots=True)
class EmailBatch:
    """What one email tells one person; no items: nothing left to send."""

    user_id: int
    email: str
    name: str
    timezone: str
    items: tuple[EmailItem, ...]


def why_not_sent(notification: Notification, digest: bool, now: datetime) -> str | None:
    """Why an item no longer needs an email, or None. A digest item seen in the page is not
    emailed; an immediate one (a confirmation, a failed payment) is a record and still is."""
    if notification.read_at is not None:
        return "obsolete" if notification.obsolete_at is not None else "read"
    if notification.archived_at is not None:
        return "archived"
    if notification.obsolete_at is not None:
        return "obsolete"
    if notification.expires_at is not None and notification.expires_at <= now:
        return "expired"
    if digest and notification.seen_at is not None:
        return "seen"
    return None


async def start_email(
    session: AsyncSession, user_id: int, delivery_ids: Sequence[int], now: datetime, lease: timedelta
) -> EmailBatch | None:
    """In the caller's transaction, before the mail server is called: locks the rows, marks done
    those that need no email any more, and marks the attempt on the rest. None: the user is gone
    or nothing is left to send. Raises SendInProgress while another attempt's lease runs."""
    found = (
        await session.execute(
            select(OffsiteDelivery, Notification)
            .join(Notification, Notification.id == OffsiteDelivery.notification_id)
            .where(
                OffsiteDelivery.id.in_(list(delivery_ids)),
                OffsiteDelivery.user_id == user_id,
                OffsiteDelivery.channel == "email",
                OffsiteDelivery.done_at.is_(None),
            )
            .order_by(Notification.seq)
            .with_for_update(of=OffsiteDelivery)
            .execution_options(populate_existing=True)
        )
    ).all()
    kept: list[tuple[OffsiteDelivery, Notification]] = []
    for delivery, notification in found:
        reason = why_not_sent(notification, delivery.digest, now)
        if reason:
            delivery.done_at, delivery.outcome = now, reason
        else:
            kept.append((delivery, notification))
    user = await session.get(User, user_id) if kept else None
    if user is None:
        for delivery, _ in kept:
            delivery.done_at, delivery.outcome = now, "off"
        await session.flush()
        return None
    if any(d.sending_at is not None and d.sending_at > now - lease for d, _ in kept):
        raise SendInProgress(f"email of deliveries {sorted(delivery_ids)} is being sent by another run")
    for delivery, _ in kept:
        delivery.sending_at = now
    await session.flush()
    items = tuple(EmailItem(d.id, n.id, n.type, n.title, n.body, n.url, n.created_at, d.digest) for d, n in kept)
    return EmailBatch(user.id, user.email, user.name, user.timezone, items)


async def release_email(session: AsyncSession, delivery_ids: Sequence[int]) -> None:
    """In the caller's transaction, after the mail server refused or could not be reached: the
    attempt is over and sent nothing, so the next run need not wait for its lease."""
    await session.execute(
        update(OffsiteDelivery)
        .where(OffsiteDelivery.id.in_(list(delivery_ids)), OffsiteDelivery.done_at.is_(None))
        .values(sending_at=None)
        .execution_options(synchronize_session=False)
    )


async def finish_email(session: AsyncSession, delivery_ids: Sequence[int], now: datetime) -> None:
    """In the caller's transaction, once the mail server accepted the email: the rows are sent."""
    await session.execute(
        update(OffsiteDelivery)
        .where(OffsiteDelivery.id.in_(list(delivery_ids)), OffsiteDelivery.done_at.is_(None))
        .values(done_at=now, outcome="sent")
        .execution_options(synchronize_session=False)
    )
