"""General announcements: an organizer to their event's confirmed attendees, an admin to everyone.

The request only checks and records the announcement (its delivery report and an outbox row);
the fan-out job writes the notifications in chunks, like every other notification that goes to
many people.

Send order. Several workers run fan-outs side by side, so the chunk of a later announcement may
run before (or while) the chunk of an earlier one. Each announcement's text is kept on its
delivery report, and a chunk writes, for each of its recipients and under their counter locks,
the earlier announcements of the same sender to the same audience (sent within ORDER_WINDOW)
that the recipient should have and does not have yet, first; then its own. Whichever chunk runs
first writes them all in send order (by report id, which the requests committed one after the
other); the others find them written (dedupe keys) and add only what is missing. Nothing waits
and nothing is serialised beyond the counter locks every inbox write takes already, in the one
lock order (counters ascending, then notification rows).

Who should have an announcement is fixed when it is sent: the attendees holding a confirmed
seat at that moment (everyone with an account at that moment, for an announcement to
everyone). The fan-out's recipients and a later chunk's catching up both follow that rule, so
the person who books after an announcement gets neither it nor, through a later one, it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.bookings.models import Booking, BookingAttendee
from webapp.db import among
from webapp.deliveries.models import DeliveryReport
from webapp.deliveries.services import DeliveryReportService, announcement_key
from webapp.errors import Forbidden, NotFound, RateLimited, ValidationFailed
from webapp.events.models import Event
from webapp.notifications.services import NewNotification, NotificationService
from webapp.outbox.services import enqueue_after_commit
from webapp.ratelimit import RateLimiter

MAX_BODY = 2000
# How far back a chunk looks for earlier announcements of its sender still to be written first:
# fan-outs run within seconds, and the sending limit (ANNOUNCEMENTS_PER_HOUR) keeps the look-back
# to a handful of reports. An announcement whose fan-out is later than this behind a newer one
# is written when it runs, after it.
ORDER_WINDOW = timedelta(hours=1)
ORDER_LOOK_BACK = 50  # reports at most, whatever the window holds


@dataclass(frozen=True)
class Announced:
    recipients: int  # as counted now; the fan-out counts again when it runs (its report says)
    report_id: int


class AnnouncementService:
    def __init__(self, session: AsyncSession, limiter: RateLimiter) -> None:
        self.session = session
        self.limiter = limiter

    async def announce(self, sender: User, title: str, body: str, event_id: int | None = None) -> Announced:
        """Queues a `general` notification; says how many people it goes to, and its report."""
        title, body = title.strip(), body.strip()
        errors = {}
        if not title or len(title) > 200:
            errors["title"] = "A title of 1 to 200 characters is required."
        if len(body) > MAX_BODY:
            errors["body"] = f"Use at most {MAX_BODY} characters."
        if errors:
            raise ValidationFailed(errors)
        # The limit lives in Redis: checked and counted before the transaction touches a row.
        key = f"rate:announce:{sender.id}"
        if await self.limiter.is_blocked(key):
            raise RateLimited("Too many announcements. Try again later.", retry_after=self.limiter.retry_after())
        await self.limiter.record(key)
        if event_id is not None:
            event = await self.session.get(Event, event_id)
            if event is None or (event.organizer_id != sender.id and not sender.is_admin):
                raise NotFound("No such event.")
            recipients = await self._attendee_count(event.id)
        elif sender.is_admin:
            recipients = int(await self.session.scalar(select(func.count(User.id))) or 0)
        else:
            raise Forbidden("Only admins can announce to everyone; choose one of your events.")
        token = uuid.uuid4().hex
        report_id = await DeliveryReportService(self.session).open(
            key=announcement_key(token),
            kind="announcement",
            title=title,
            event_id=event_id,
            sender_id=sender.id,
            body=body,
        )
        enqueue_after_commit(
            self.session,
            "fan_out_announcement",
            announcement=token,
            sender_id=sender.id,
            title=title,
            body=body,
            event_id=event_id,
            report_id=report_id,
        )
        return Announced(recipients=recipients, report_id=report_id)

    async def _attendee_count(self, event_id: int) -> int:
        statement = (
            select(func.count(func.distinct(BookingAttendee.user_id)))
            .join(Booking, Booking.id == BookingAttendee.booking_id)
            .where(Booking.event_id == event_id, Booking.status == "confirmed")
        )
        return int(await self.session.scalar(statement) or 0)


@dataclass(frozen=True)
class Announcement:
    """One announcement as its fan-out carries it (the outbox payload)."""

    announcement: str  # its token: the dedupe key of what it writes is `announcement:<token>`
    sender_id: int
    title: str
    body: str
    event_id: int | None
    report_id: int | None

    def told_to(self, user_id: int) -> NewNotification:
        return NewNotification(
            user_id=user_id,
            type="general",
            title=self.title,
            body=self.body,
            url=f"/events/{self.event_id}" if self.event_id else "/",
            data={"announcement": self.announcement},
            actor_id=self.sender_id,
            subject_kind="event" if self.event_id else None,
            subject_id=self.event_id,
            dedupe_key=announcement_key(self.announcement),
            report_id=self.report_id,
        )


async def attending_since(
    session: AsyncSession, event_id: int, user_ids: Sequence[int] | None = None
) -> dict[int, datetime | None]:
    """The people holding a confirmed seat at the event (optionally among some), with when they
    first got one (None: a booking confirmed before that was recorded)."""
    attendees: Any = BookingAttendee
    if user_ids is not None:
        # Some people (a fan-out chunk): their seats first, then those seats' bookings. Joined as
        # one query, SQLite's planner walked the event's bookings and looked every one of them up
        # with each of the chunk's ids (1 s per 1,000 of a 10,000-seat event; this way 5 ms).
        attendees = (
            select(BookingAttendee.booking_id, BookingAttendee.user_id)
            .where(among(session, BookingAttendee.user_id, user_ids))
            .cte("attendees")
            .prefix_with("MATERIALIZED")
        ).c
    statement = (
        select(attendees.user_id, func.min(Booking.confirmed_at))
        .join(Booking, Booking.id == attendees.booking_id)
        .where(Booking.event_id == event_id, Booking.status == "confirmed")
        .group_by(attendees.user_id)
        .order_by(attendees.user_id)
    )
    return {user_id: since for user_id, since in await session.execute(statement)}


async def _audience_since(
    session: AsyncSession, event_id: int | None, user_ids: Sequence[int] | None = None
) -> dict[int, datetime | None]:
    """Who an announcement to this audience may reach now, with since when."""
    if event_id is not None:
        return await attending_since(session, event_id, user_ids)
    statement = select(User.id, User.created_at).order_by(User.id)
    if user_ids is not None:
        statement = statement.where(among(session, User.id, user_ids))
    return {user_id: created for user_id, created in await session.execute(statement)}


def _there_when_sent(since: datetime | None, sent_at: datetime | None) -> bool:
    return since is None or sent_at is None or since <= sent_at


async def recipients(session: AsyncSession, event_id: int | None, report_id: int | None) -> list[int]:
    """The announcement's recipients: its audience as it was when it was sent."""
    report = await session.get(DeliveryReport, report_id) if report_id is not None else None
    sent_at = report.created_at if report is not None else None
    audience = await _audience_since(session, event_id)
    return [user_id for user_id, since in audience.items() if _there_when_sent(since, sent_at)]


async def write_in_send_order(session: AsyncSession, announcement: Announcement, user_ids: Sequence[int]) -> None:
    """In the caller's transaction: tells these recipients the announcement, after any earlier
    one of the same sender to the same audience they should have and have not been told yet
    (see the module's docstring)."""
    service = NotificationService(session)
    user_ids = sorted(set(user_ids))
    await service.lock_inboxes(user_ids)  # before reading what they were told: the lock order
    earlier = [_announcement_of(report, announcement) for report in await _earlier_reports(session, announcement)]
    audience = await _audience_since(session, announcement.event_id, user_ids) if earlier else {}
    items: list[NewNotification] = []
    for user_id in user_ids:
        # What they were told already is skipped by its dedupe key; the rest is numbered in
        # this order, so their inbox has it in send order.
        items.extend(
            older.told_to(user_id)
            for older, sent_at in earlier
            if user_id in audience and _there_when_sent(audience[user_id], sent_at)
        )
        items.append(announcement.told_to(user_id))
    await service.notify_many(items)


async def _earlier_reports(session: AsyncSession, announcement: Announcement) -> list[DeliveryReport]:
    """Earlier announcements of the sender to the same audience, oldest first."""
    if announcement.report_id is None:
        return []  # queued before reports existed
    this = await session.get(DeliveryReport, announcement.report_id)
    if this is None:
        return []
    same_audience = (
        DeliveryReport.event_id == announcement.event_id
        if announcement.event_id is not None
        else DeliveryReport.event_id.is_(None)
    )
    statement = (
        select(DeliveryReport)
        .where(
            same_audience,
            DeliveryReport.id < this.id,
            DeliveryReport.kind == "announcement",
            DeliveryReport.sender_id == announcement.sender_id,
            DeliveryReport.body.is_not(None),
            DeliveryReport.created_at >= this.created_at - ORDER_WINDOW,
        )
        .order_by(DeliveryReport.id.desc())
        .limit(ORDER_LOOK_BACK)
    )
    return sorted(await session.scalars(statement), key=lambda report: report.id)


def _announcement_of(report: DeliveryReport, later: Announcement) -> tuple[Announcement, datetime]:
    """An earlier announcement from its report, with when it was sent."""
    told = Announcement(
        announcement=report.key.removeprefix("announcement:"),
        sender_id=later.sender_id,
        title=report.title,
        body=report.body or "",
        event_id=report.event_id,
        report_id=report.id,
    )
    return told, report.created_at
