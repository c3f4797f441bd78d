"""Events: creation, edits (each bumps the version), cancellation, listing."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.db import utcnow
from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.events.models import Event, EventChange
from webapp.outbox.services import enqueue_after_commit
from webapp.pagination import DEFAULT_PAGE_SIZE, Cursor, check_limit, decode_cursor, page_of
from webapp.reminders.services import ReminderService
from webapp.timeutil import is_valid_timezone

CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
MAX_CAPACITY = 100_000
MAX_PRICE_CENTS = 100_000_000


@dataclass(frozen=True)
class EventDetails:
    title: str
    description: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    capacity: int
    price_cents: int
    currency: str

    @classmethod
    def of(cls, event: Event) -> EventDetails:
        return cls(**{f.name: getattr(event, f.name) for f in fields(cls)})


def validate_details(details: EventDetails, *, now: datetime, seats_booked: int = 0) -> None:
    errors: dict[str, str] = {}
    if not details.title.strip():
        errors["title"] = "Enter a title."
    elif len(details.title) > 200:
        errors["title"] = "Use at most 200 characters."
    if not details.venue.strip():
        errors["venue"] = "Enter a venue."
    elif len(details.venue) > 200:
        errors["venue"] = "Use at most 200 characters."
    if len(details.description) > 5000:
        errors["description"] = "Use at most 5000 characters."
    if details.starts_at.tzinfo is None:
        errors["starts_at"] = "Give the time with its UTC offset."
    elif details.starts_at <= now:
        errors["starts_at"] = "The event must start in the future."
    if details.ends_at.tzinfo is None:
        errors["ends_at"] = "Give the time with its UTC offset."
    elif details.starts_at.tzinfo is not None and details.ends_at <= details.starts_at:
        errors["ends_at"] = "The event must end after it starts."
    if not is_valid_timezone(details.timezone):
        errors["timezone"] = "Choose an IANA time zone (e.g. Europe/Berlin)."
    if not 1 <= details.capacity <= MAX_CAPACITY:
        errors["capacity"] = f"Capacity must be between 1 and {MAX_CAPACITY}."
    elif details.capacity < seats_booked:
        errors["capacity"] = f"{seats_booked} seats are already booked; capacity cannot be lower."
    if not 0 <= details.price_cents <= MAX_PRICE_CENTS:
        errors["price_cents"] = "Price must be zero or more."
    if not CURRENCY_PATTERN.match(details.currency):
        errors["currency"] = "Use a three-letter currency code such as EUR."
    if errors:
        raise ValidationFailed(errors)


class EventService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, organizer: User, details: EventDetails) -> Event:
        details = _normalized(details)
        validate_details(details, now=utcnow())
        event = Event(organizer_id=organizer.id, **details.__dict__)
        self.session.add(event)
        await self.session.flush()
        await self.session.refresh(event, ["organizer"])
        return event

    async def update(self, organizer: User, event_id: int, changes: dict[str, object]) -> Event:
        # The row lock (first in the lock order) makes simultaneous edits take turns: each one
        # reads what the other committed and gets its own version.
        event = await self.get_organized(organizer, event_id, lock=True)
        if event.status == "cancelled":
            raise Conflict("A cancelled event cannot be edited.", code="event_cancelled")
        now = utcnow()
        if event.starts_at <= now:
            raise Conflict("An event that has started cannot be edited.", code="event_started")
        current = EventDetails.of(event)
        proposed = _normalized(replace(current, **changes))  # type: ignore[arg-type]
        if proposed == current:
            return event
        validate_details(proposed, now=now, seats_booked=event.seats_booked)
        for name, value in proposed.__dict__.items():
            setattr(event, name, value)
        event.version += 1
        event.updated_at = now
        if proposed.starts_at != current.starts_at:
            await ReminderService(self.session).reschedule_event(event, now)
        news = attendee_facing_changes(current, proposed)
        if news:
            # Kept per version: the fan-out job tells from these, whatever order jobs run in.
            self.session.add(EventChange(event_id=event.id, version=event.version, changes=news, created_at=now))
            enqueue_after_commit(
                self.session,
                "fan_out_event_change",
                event_id=event.id,
                version=event.version,
                kind="updated",
                changes=news,
            )
        await self.session.flush()
        return event

    async def cancel(self, organizer: User, event_id: int) -> Event:
        event = await self.get_organized(organizer, event_id, lock=True)
        if event.status == "cancelled":
            raise Conflict("The event is already cancelled.", code="event_cancelled")
        event.status = "cancelled"
        event.cancelled_at = utcnow()
        event.version += 1
        await ReminderService(self.session).cancel_for_event(event.id)
        enqueue_after_commit(
            self.session, "fan_out_event_change", event_id=event.id, version=event.version, kind="cancelled"
        )
        await self.session.flush()
        return event

    async def get(self, event_id: int) -> Event:
        event = await self.session.get(Event, event_id)
        if event is None:
            raise NotFound("No such event.")
        return event

    async def get_organized(self, organizer: User, event_id: int, lock: bool = False) -> Event:
        """The event if this user organizes it; anyone else's is reported as missing. `lock`
        holds its row until the transaction ends (PostgreSQL; SQLite serialises writers)."""
        event = await self.session.get(
            Event, event_id, populate_existing=lock, with_for_update={"of": Event} if lock else None
        )
        if event is None or event.organizer_id != organizer.id:
            raise NotFound("No such event.")
        return event

    async def list_upcoming(self, query: str = "", limit: int = 100) -> list[Event]:
        return list(await self.session.scalars(self._upcoming(query).limit(limit)))

    async def page_upcoming(
        self, query: str = "", limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> tuple[list[Event], str | None]:
        """One page of `list_upcoming`, soonest first (ties by id), and the cursor of the next."""
        check_limit(limit)
        after = decode_cursor(cursor)
        statement = self._upcoming(query).order_by(Event.id)
        if after is not None:
            statement = statement.where(
                or_(Event.starts_at > after.moment, and_(Event.starts_at == after.moment, Event.id > after.row_id))
            )
        rows = list(await self.session.scalars(statement.limit(limit + 1)))
        return page_of(rows, limit, lambda e: Cursor(e.starts_at, e.id))

    def _upcoming(self, query: str) -> Select[Event]:
        statement = (
            select(Event).where(Event.status == "scheduled", Event.starts_at > utcnow()).order_by(Event.starts_at)
        )
        if query.strip():
            pattern = f"%{_escape_like(query.strip().lower())}%"
            statement = statement.where(
                or_(
                    Event.title.ilike(pattern, escape="\\"),
                    Event.description.ilike(pattern, escape="\\"),
                    Event.venue.ilike(pattern, escape="\\"),
                )
            )
        return statement

    async def list_organized(self, organizer: User) -> list[Event]:
        statement = select(Event).where(Event.organizer_id == organizer.id).order_by(Event.starts_at.desc())
        return list(await self.session.scalars(statement))


ATTENDEE_FACING = ("title", "starts_at", "ends_at", "venue")


def attendee_facing_changes(before: EventDetails, after: EventDetails) -> dict[str, list[str]]:
    """What attendees are told about: old → new, times as ISO strings."""
    changes = {}
    for name in ATTENDEE_FACING:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes[name] = [old.isoformat(), new.isoformat()] if isinstance(old, datetime) else [old, new]
    return changes


def _normalized(details: EventDetails) -> EventDetails:
    return replace(
        details,
        starts_at=_utc(details.starts_at),
        ends_at=_utc(details.ends_at),
        title=details.title.strip(),
        venue=details.venue.strip(),
        description=details.description.replace("\r\n", "\n").strip(),  # browsers send CRLF
        currency=details.currency.strip().upper(),
        timezone=details.timezone.strip(),
    )


def _utc(moment: datetime) -> datetime:
    """Aware times become UTC (what is stored); naive ones stay naive for validation to refuse."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
