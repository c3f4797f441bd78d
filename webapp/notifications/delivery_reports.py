"""Delivery reports: how far an announcement, event update or cancellation got. Counts only.

A report's numbers come from the notifications its fan-out wrote (`notifications.report_id`), in
one aggregate query per list of reports (on the partial index of report_id):

- recipients: how many people the fan-out planned to tell (None until it has counted them);
- notified: notifications written so far (a fan-out in progress, or people it had nothing new for);
- delivered: written to a live stream (SSE or `/cable`) of the recipient as it happened, first
  time only (webapp.notifications.delivered);
- seen: shown in an opened dropdown, or read (reading implies seeing);
- read: read by the recipient (an item replaced before it was read is not);
- replaced: made obsolete before it was read: a newer update merged it, or the event was cancelled;
- unseen: recipients not told yet, plus items still current that nobody has seen. Without
  replacements this is recipients − seen.

Who may read them: an event's reports its organizer and admins; a report also its sender.
Anyone else is told there is no such thing (404). No query here names a recipient.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypedDict, TypeVar

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.db import finished_even_if_left
from webapp.deliveries.models import DeliveryReport
from webapp.errors import NotFound, ValidationFailed
from webapp.events.models import Event
from webapp.notifications.models import Notification
from webapp.openapi import Timestamp
from webapp.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from webapp.realtime.doorbell import Subscription
from webapp.realtime.protocol import CloseMessage, from_wire
from webapp.validation import MAX_INT32

T = TypeVar("T")


class DeliveryReportJson(TypedDict):
    """One report's numbers (README "Delivery reports"); counts only, never who."""

    id: int
    kind: str
    event_id: int | None
    title: str
    created_at: Timestamp
    recipients: int | None
    notified: int
    delivered: int
    seen: int
    read: int
    unseen: int
    replaced: int


class DeliveryReportPage(TypedDict):
    """Newest first; pass `next_cursor` as `cursor` for the next page (null: no more)."""

    items: list[DeliveryReportJson]
    next_cursor: str | None


@dataclass(frozen=True)
class DeliveryCounts:
    id: int
    kind: str
    event_id: int | None
    sender_id: int | None
    title: str
    created_at: datetime
    recipients: int | None
    notified: int
    delivered: int
    seen: int
    read: int
    replaced: int
    waiting: int  # current items nobody has seen yet

    @property
    def unseen(self) -> int:
        not_told = max(0, (self.recipients or 0) - self.notified)
        return not_told + self.waiting

    def json(self) -> DeliveryReportJson:
        return {
            "id": self.id,
            "kind": self.kind,
            "event_id": self.event_id,
            "title": self.title,
            "created_at": self.created_at.isoformat(),
            "recipients": self.recipients,
            "notified": self.notified,
            "delivered": self.delivered,
            "seen": self.seen,
            "read": self.read,
            "unseen": self.unseen,
            "replaced": self.replaced,
        }

    def numbers(self) -> tuple[Any, ...]:
        """Everything a page shows of it: a report is sent again only when this changes."""
        return tuple(asdict(self).values())


def _counted(condition: ColumnElement[bool]) -> Any:
    return func.count(case((condition, 1)))


class DeliveryReports:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_event(
        self, viewer: User, event_id: int, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> tuple[list[DeliveryCounts], str | None]:
        """An event's reports, newest first, a page at a time; its organizer and admins only."""
        errors = {}
        if not 1 <= limit <= MAX_PAGE_SIZE:
            errors["limit"] = f"Use a limit from 1 to {MAX_PAGE_SIZE}."
        before = _parse_cursor(cursor)
        if before == 0:
            errors["cursor"] = "Invalid cursor."
        if errors:
            raise ValidationFailed(errors)
        await self.check_event(viewer, event_id)
        page = await self.of_event(event_id, limit + 1, before)
        next_cursor = str(page[limit - 1].id) if len(page) > limit else None
        return page[:limit], next_cursor

    async def check_event(self, viewer: User, event_id: int) -> None:
        event = await self.session.get(Event, event_id)
        if event is None or not (viewer.is_admin or event.organizer_id == viewer.id):
            raise NotFound("No such event.")

    async def of_event(self, event_id: int, limit: int, before: int | None = None) -> list[DeliveryCounts]:
        """The event's newest reports (below the report id `before`), for a viewer already checked."""
        condition = DeliveryReport.event_id == event_id
        if before is not None:
            condition = and_(condition, DeliveryReport.id < before)
        return await self._count(condition, limit)

    async def to_everyone(self, limit: int) -> list[DeliveryCounts]:
        """The newest announcements to everyone (every admin's), for an admin already checked."""
        return await self._count(and_(DeliveryReport.event_id.is_(None), DeliveryReport.kind == "announcement"), limit)

    async def get(self, viewer: User, report_id: int) -> DeliveryCounts:
        found = await self._count(DeliveryReport.id == report_id, 1)
        if found:
            report = found[0]
            if viewer.is_admin or report.sender_id == viewer.id:
                return report
            event = await self.session.get(Event, report.event_id) if report.event_id is not None else None
            if event is not None and event.organizer_id == viewer.id:
                return report
        raise NotFound("No such delivery report.")

    async def _count(self, condition: ColumnElement[bool], limit: int) -> list[DeliveryCounts]:
        """The newest `limit` reports matching `condition`, counted in one query."""
        reports = select(DeliveryReport).where(condition).order_by(DeliveryReport.id.desc()).limit(limit).subquery("r")
        n = Notification
        current = n.obsolete_at.is_(None)
        statement = (
            select(
                reports.c.id,
                reports.c.kind,
                reports.c.event_id,
                reports.c.sender_id,
                reports.c.title,
                reports.c.created_at,
                reports.c.recipients,
                func.count(n.id),
                func.count(n.delivered_at),
                _counted(or_(n.seen_at.is_not(None), and_(n.read_at.is_not(None), current))),
                _counted(and_(n.read_at.is_not(None), current)),
                func.count(n.obsolete_at),
                _counted(and_(n.seen_at.is_(None), n.read_at.is_(None))),
            )
            .select_from(reports.outerjoin(n, n.report_id == reports.c.id))
            .group_by(*reports.c)
            .order_by(reports.c.id.desc())
        )
        return [DeliveryCounts(*row) for row in await self.session.execute(statement)]


def _parse_cursor(cursor: str | None) -> int | None:
    """A report id to continue below; 0 for anything else."""
    if cursor is None:
        return None
    return int(cursor) if cursor.isdigit() and 0 < int(cursor) <= MAX_INT32 else 0


class ReportWatch:
    """Reports an open page is watching: re-counted every `interval` seconds server-side, and
    yielded only when they changed (None: a heartbeat is due). The stream ends at its deadline
    (the token's expiry or the maximum lifetime), at shutdown and when its session ends: it holds
    a doorbell subscription that hears only those (webapp.realtime.doorbell, inbox=False)."""

    def __init__(
        self, subscription: Subscription, interval: float, heartbeat: float, deadline: float, at_token_expiry: bool
    ) -> None:
        self.subscription = subscription
        self.interval = interval
        self.heartbeat = heartbeat
        self.deadline = deadline
        self.at_token_expiry = at_token_expiry
        self.end_reason = "client_left"

    async def changes(self, load: Callable[[], Awaitable[T]]) -> AsyncIterator[T | None]:
        self.subscription.started = True
        try:
            last: Any = object()
            now = time.monotonic()
            next_check, last_write = now, now
            while (now := time.monotonic()) < self.deadline:
                if now >= next_check:
                    next_check = now + self.interval
                    value = await finished_even_if_left(load())
                    if value != last:
                        last, last_write = value, time.monotonic()
                        yield value
                        continue
                if now - last_write >= self.heartbeat:
                    last_write = now
                    yield None
                wake = min(next_check, self.deadline, last_write + self.heartbeat)
                message = await self.subscription.next(max(0.0, wake - time.monotonic()))
                close = from_wire(message) if message is not None else None
                if isinstance(close, CloseMessage):
                    self.end_reason = "session_ended" if close.reason == "session_ended" else "shutdown"
                    return
            self.end_reason = "token_expiry" if self.at_token_expiry else "lifetime"
        finally:
            self.subscription.close()
