"""Fan-out to many people: event updates and cancellations, announcements, review requests.

A root message finds the recipients and writes one outbox row (a chunk job) per CHUNK_SIZE of
them in its own transaction; each chunk is one bulk insert. Every notification has a
per-recipient dedupe key, so a chunk that is delivered again (a worker killed mid-way, a retry)
adds nothing.

Announcements, event updates and cancellations carry the id of their delivery report (opened
with the fact they tell; None for messages queued before reports existed): the root records how
many recipients it planned, and every notification a chunk writes points at the report. An
update item that merges several versions counts under the report of the newest version it
tells; the unread items it replaces stay under their own reports, counted there as replaced
(see _tell_updates).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dramatiq
from sqlalchemy import or_, select

from jobs import runtime
from jobs.broker import broker as _broker  # noqa: F401 - configures Dramatiq before the actors below
from webapp.auth.models import User
from webapp.bookings.models import Booking, BookingAttendee
from webapp.bookings.payment_models import Payment
from webapp.bookings.services import EVENT_CANCELLED
from webapp.db import among
from webapp.deliveries.services import DeliveryReportService, event_change_key
from webapp.events.models import Event, EventChange
from webapp.notifications import announcements
from webapp.notifications.announcements import attending_since
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService
from webapp.outbox.services import enqueue_after_commit
from webapp.rendering import money
from webapp.settings import get_settings
from webapp.timeutil import format_in_zone

# Recipients per chunk message: big enough that 10,000 attendees take about ten messages.
CHUNK_SIZE = max(500, get_settings().jobs_fanout_chunk_size)


async def confirmed_attendees(session: Any, event_id: int) -> list[int]:
    return await _attendees(session, event_id, Booking.status == "confirmed")


async def attendees_of_cancelled_event(session: Any, event_id: int) -> list[int]:
    """Everyone who held a seat, paid for or held for payment, when the event was cancelled."""
    return await _attendees(
        session, event_id, or_(Booking.status == "confirmed", Booking.cancel_reason == EVENT_CANCELLED)
    )


async def _attendees(session: Any, event_id: int, holding: Any) -> list[int]:
    statement = (
        select(BookingAttendee.user_id)
        .join(Booking, Booking.id == BookingAttendee.booking_id)
        .where(Booking.event_id == event_id, holding)
        .distinct()
        .order_by(BookingAttendee.user_id)
    )
    return list(await session.scalars(statement))


def send_chunks(session: Any, actor: dramatiq.Actor[Any, Any], user_ids: Sequence[int], **kwargs: Any) -> int:
    """One outbox row per chunk, in the root job's transaction: a chunk lost by the queue (or
    by a worker killed mid-chunk) is handed over again until it has run."""
    chunks = [list(user_ids[i : i + CHUNK_SIZE]) for i in range(0, len(user_ids), CHUNK_SIZE)]
    for chunk in chunks:
        enqueue_after_commit(session, actor.actor_name, **kwargs, user_ids=chunk)
    return len(chunks)


async def _users(session: Any, user_ids: Sequence[int]) -> list[Any]:
    """Recipients' ids and time zones (rows, not ORM objects: a chunk has a thousand)."""
    return list(
        await session.execute(select(User.id, User.timezone).where(among(session, User.id, user_ids)).order_by(User.id))
    )


# ---- event updated / cancelled -------------------------------------------------------------


async def plan(session: Any, report_id: int | None, recipients: Sequence[int]) -> None:
    if report_id is not None:
        await DeliveryReportService(session).plan(report_id, len(recipients))


@dramatiq.actor(queue_name="fanout")
async def fan_out_event_change(
    event_id: int,
    version: int,
    kind: str,
    changes: dict[str, Any] | None = None,
    report_id: int | None = None,
    outbox_id: int | None = None,
) -> None:
    async with runtime.session(outbox_id) as session:
        if kind == "cancelled":
            recipients = await attendees_of_cancelled_event(session, event_id)
        else:
            recipients = await confirmed_attendees(session, event_id)
        await plan(session, report_id, recipients)
        send_chunks(
            session,
            notify_event_change,
            recipients,
            event_id=event_id,
            version=version,
            kind=kind,
            changes=changes or {},
            report_id=report_id,
        )
        await session.commit()


def describe_changes(changes: dict[str, Any], zone: str) -> str:
    parts = []
    if "starts_at" in changes and "ends_at" in changes and _same_duration(changes):
        changes = {k: v for k, v in changes.items() if k != "ends_at"}  # moved as a whole: the start says it
    for field, (old, new) in changes.items():
        if field in ("starts_at", "ends_at"):
            label = "Starts" if field == "starts_at" else "Ends"
            old_text = format_in_zone(datetime.fromisoformat(old), zone)
            new_text = format_in_zone(datetime.fromisoformat(new), zone)
            parts.append(f"{label}: {old_text} → {new_text}")
        else:
            parts.append(f"{field.replace('_', ' ').capitalize()}: {old} → {new}")
    return "; ".join(parts)


def _same_duration(changes: dict[str, Any]) -> bool:
    (old_start, new_start), (old_end, new_end) = changes["starts_at"], changes["ends_at"]
    parse = datetime.fromisoformat
    return bool(parse(old_end) - parse(old_start) == parse(new_end) - parse(new_start))


def merge_changes(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """From the oldest 'before' to the newest 'after', per field; fields back where they were drop out."""
    merged = {field: list(pair) for field, pair in older.items()}
    for field, (old, new) in newer.items():
        merged[field] = [merged[field][0] if field in merged else old, new]
    return {field: pair for field, pair in merged.items() if pair[0] != pair[1]}


@dramatiq.actor(queue_name="fanout")
async def notify_event_change(
    event_id: int,
    version: int,
    kind: str,
    changes: dict[str, Any],
    user_ids: list[int],
    report_id: int | None = None,
    outbox_id: int | None = None,
) -> None:
    async with runtime.session(outbox_id) as session:
        if kind == "cancelled":
            await _tell_cancellation(session, event_id, version, user_ids, report_id)
        else:
            await _tell_updates(session, event_id, version, changes, user_ids)
        await session.commit()


async def _tell_cancellation(
    session: Any, event_id: int, version: int, user_ids: list[int], report_id: int | None
) -> None:
    event = await session.get(Event, event_id)
    if event is None:
        return
    service = NotificationService(session)
    users = await _users(session, user_ids)
    money_told = await _what_became_of_the_money(session, event_id, user_ids)
    items = [
        NewNotification(
            user_id=user.id,
            type="event_cancelled",
            title=f"Cancelled: {event.title}",
            body=f"It was to start {format_in_zone(event.starts_at, user.timezone)} at {event.venue}."
            + money_told.get(user.id, ""),
            url=f"/events/{event.id}",
            data={"event_id": event.id, "version": version},
            subject_kind="event",
            subject_id=event.id,
            dedupe_key=f"event_cancelled:{event.id}:{user.id}",
            report_id=report_id,
        )
        for user in users
    ]
    # Reminders and updates about an event that will not happen are no longer news (their
    # reports count them as replaced).
    stale = await service.unread_about("event", event.id, ("event_reminder", "event_updated"), user_ids)
    await service.lock_inboxes([user.id for user in users])
    await service.mark_obsolete(stale)
    await _show_confirmations_cancelled(session, event.id, user_ids)
    await service.notify_many(items)


async def _show_confirmations_cancelled(session: Any, event_id: int, user_ids: Sequence[int]) -> None:
    """The bookings went with the event: their confirmations now show them cancelled, as a
    booker's own cancellation does (jobs.bookings.send_booking_cancelled)."""
    confirmations = await session.scalars(
        select(Notification).where(
            among(session, Notification.user_id, user_ids),
            Notification.type == "booking_confirmed",
            Notification.subject_kind == "booking",
            Notification.subject_id.in_(
                select(Booking.id).where(Booking.event_id == event_id, Booking.cancel_reason == EVENT_CANCELLED)
            ),
        )
    )
    for confirmation in confirmations:
        confirmation.data = {**confirmation.data, "booking_status": "cancelled"}


async def _what_became_of_the_money(session: Any, event_id: int, user_ids: Sequence[int]) -> dict[int, str]:
    """For each booker among these recipients, a sentence on their money: refunded to their card,
    or never charged. Members a group booking held a seat for paid nothing; free seats cost nothing."""
    bookings = (
        select(Booking.user_id, Booking.amount_cents, Booking.currency, Booking.refund_status, Payment.card_last4)
        .outerjoin(Payment, (Payment.booking_id == Booking.id) & (Payment.status == "succeeded"))
        .where(
            Booking.event_id == event_id,
            Booking.cancel_reason == EVENT_CANCELLED,
            Booking.amount_cents > 0,
            among(session, Booking.user_id, user_ids),
        )
    )
    told = {}
    for user_id, amount, currency, refund_status, card_last4 in await session.execute(bookings):
        if refund_status is not None and card_last4:
            told[user_id] = f" Your {money(amount, currency)} is being refunded to the card ending {card_last4}."
        elif refund_status is None:
            told.setdefault(user_id, " Nothing was charged.")
    return told


async def _tell_updates(
    session: Any, event_id: int, version: int, message_changes: dict[str, Any], user_ids: list[int]
) -> None:
    """Tells each recipient every committed change of the event they have not been told yet, in
    one unread item that replaces their unread earlier ones. Works from the stored changes, not
    from this message, so jobs may run late, twice, out of order or at once: the version numbers
    told are kept on each item, and an item's dedupe key is the newest version it tells.

    Delivery reports: an item counts under the report of the newest version it tells, whichever
    job wrote it (so this message's own report is not passed in); the earlier unread items it
    replaces stay under theirs, as replaced. When a newer version's job runs first, its item
    tells the older version too and the older version's report is left with nothing to send."""
    # The event row first (the lock order), shared: an edit or the cancellation of this event
    # waits until this transaction ends, so what is read below stays true until it commits.
    event = await session.get(Event, event_id, populate_existing=True, with_for_update={"read": True, "of": Event})
    if event is None or event.status == "cancelled":
        return  # the cancellation tells them (and obsoletes any update told before it)
    history = {
        row.version: (row.changes, row.created_at)
        for row in await session.scalars(
            select(EventChange).where(EventChange.event_id == event_id).order_by(EventChange.version)
        )
    }
    if version not in history and message_changes:  # queued before changes were stored per version
        history[version] = (message_changes, None)
    seated_since = await attending_since(session, event_id, user_ids)
    reports = await _update_reports(session, event_id, history)
    service = NotificationService(session)
    users = await _users(session, user_ids)
    known = _group(await service.about("event", event.id, ("event_updated",), user_ids))
    describe = functools.lru_cache(maxsize=None)(
        lambda merged_json, zone: describe_changes(json.loads(merged_json), zone)
    )
    history_changes = {v: changes for v, (changes, _) in history.items()}
    merge_stored = functools.lru_cache(maxsize=None)(lambda versions: _merge(history_changes, versions))
    items, replaced, settled = [], [], []
    for user in users:
        if user.id not in seated_since:
            continue  # no longer holds a seat
        since = seated_since[user.id]
        earlier = known.get(user.id, [])
        told = {v for n in earlier for v in _told_versions(n)}
        untold = [
            v
            for v, (_, at) in history.items()
            if v not in told and (since is None or at is None or at > since)  # not what they booked
        ]
        if not untold:
            continue
        waiting = sorted((n for n in earlier if n.read_at is None), key=lambda n: n.seq)
        stored = set(untold)
        legacy: dict[int, dict[str, Any]] = {}
        for n in waiting:
            if "versions" in n.data:
                stored.update(v for v in n.data["versions"] if v in history)
            else:  # an item written before changes were stored per version tells its own merge
                legacy.setdefault(int(n.data.get("version", 0)), n.data.get("changes", {}))
        legacy = {v: changes for v, changes in legacy.items() if v not in stored}
        versions = sorted(stored | set(legacy))
        # Most recipients are owed the same versions: their merge is computed once per fan-out.
        merged = merge_stored(tuple(versions)) if not legacy else _merge({**history_changes, **legacy}, versions)
        replaced.extend(waiting)
        if not merged:
            # Changed and changed back: nothing is news, but these versions count as told.
            if waiting:
                settled.append((waiting[-1], sorted(told | set(versions))))
            continue
        items.append(
            NewNotification(
                user_id=user.id,
                type="event_updated",
                title=f"Changed: {event.title}",
                body=describe(json.dumps(merged, sort_keys=True), user.timezone),
                url=f"/events/{event.id}",
                data={"event_id": event.id, "version": versions[-1], "versions": versions, "changes": merged},
                subject_kind="event",
                subject_id=event.id,
                dedupe_key=f"event_updated:{event.id}:{versions[-1]}:{user.id}",
                report_id=reports.get(versions[-1]),
            )
        )
    await service.lock_inboxes([n.user_id for n in replaced] + [item.user_id for item in items])
    await service.mark_obsolete(replaced)
    await service.notify_many(items)
    for notification, told_versions in settled:  # notification rows last (the lock order)
        notification.data = {**notification.data, "versions": told_versions}


async def _update_reports(session: Any, event_id: int, history: dict[int, Any]) -> dict[int, int]:
    """The report of each stored version, by version (versions edited before reports existed
    have none). Their keys are committed with the versions, so every version read has its report."""
    keys = {event_change_key("event_updated", event_id, version): version for version in history}
    found = await DeliveryReportService(session).ids(list(keys))
    return {keys[key]: report_id for key, report_id in found.items()}


def _merge(changes_by_version: dict[int, dict[str, Any]], versions: Sequence[int]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for v in versions:
        merged = merge_changes(merged, changes_by_version[v])
    return merged


def _told_versions(notification: Any) -> list[int]:
    data = notification.data
    return [int(v) for v in data.get("versions", [data.get("version", 0)])]


def _group(notifications: Sequence[Any]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = {}
    for n in notifications:
        grouped.setdefault(n.user_id, []).append(n)
    return grouped


# ---- announcements -------------------------------------------------------------------------


@dramatiq.actor(queue_name="fanout")
async def fan_out_announcement(
    announcement: str,
    sender_id: int,
    title: str,
    body: str,
    event_id: int | None = None,
    report_id: int | None = None,
    outbox_id: int | None = None,
) -> None:
    async with runtime.session(outbox_id) as session:
        recipients = await announcements.recipients(session, event_id, report_id)
        await plan(session, report_id, recipients)
        send_chunks(
            session,
            notify_announcement,
            recipients,
            announcement=announcement,
            sender_id=sender_id,
            title=title,
            body=body,
            event_id=event_id,
            report_id=report_id,
        )
        await session.commit()


@dramatiq.actor(queue_name="fanout")
async def notify_announcement(
    announcement: str,
    sender_id: int,
    title: str,
    body: str,
    event_id: int | None,
    user_ids: list[int],
    report_id: int | None = None,
    outbox_id: int | None = None,
) -> None:
    """Writes the announcement in send order: any earlier one of the sender's still unwritten
    for these people is written first (webapp.notifications.announcements)."""
    async with runtime.session(outbox_id) as session:
        told = announcements.Announcement(announcement, sender_id, title, body, event_id, report_id)
        await announcements.write_in_send_order(session, told, user_ids)
        await session.commit()


# ---- review requests -----------------------------------------------------------------------


@dramatiq.actor(queue_name="fanout")
async def fan_out_review_requests(event_id: int, outbox_id: int | None = None) -> None:
    async with runtime.session(outbox_id) as session:
        recipients = await confirmed_attendees(session, event_id)
        send_chunks(session, notify_review_request, recipients, event_id=event_id)
        await session.commit()


@dramatiq.actor(queue_name="fanout")
async def notify_review_request(event_id: int, user_ids: list[int], outbox_id: int | None = None) -> None:
    async with runtime.session(outbox_id) as session:
        event = await session.get(Event, event_id)
        if event is None or event.status != "scheduled":
            return
        await NotificationService(session).notify_many(
            [
                NewNotification(
                    user_id=user_id,
                    type="review_request",
                    title=f"How was {event.title}?",
                    body="Rate it and leave a comment for the organizer and other guests.",
                    url=f"/events/{event.id}/review",
                    data={"event_id": event.id},
                    subject_kind="event",
                    subject_id=event.id,
                    dedupe_key=f"review_request:{event.id}",
                )
                for user_id in user_ids
            ]
        )
        await session.commit()
