"""Events: their details and checks, creation, listing. Edits and cancellations reach the event's
bookings (their reminders follow), so they are in `webapp/bookings/event_changes.py`."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.caller import Caller
from webapp.db import utcnow
from webapp.errors import NotFound, ValidationFailed
from webapp.events.models import Event
from webapp.pagination import DEFAULT_PAGE_SIZE, Cursor, check_limit, decode_cursor, page_of
from webapp.timeutil import is_valid_timezone
from webapp.validation import time_problem

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
    elif problem := time_problem(details.starts_at):
        errors["starts_at"] = problem
    elif details.starts_at <= now:
        errors["starts_at"] = "The event must start in the future."
    if details.ends_at.tzinfo is None:
        errors["ends_at"] = "Give the time with its UTC offset."
    elif problem := time_problem(details.ends_at):
        errors["ends_at"] = problem
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

    async def create(self, organizer: Caller, details: EventDetails) -> Event:
        details = normalized(details)
        validate_details(details, now=utcnow())
        event = Event(organizer_id=organizer.id, **details.__dict__)
        self.session.add(event)
        await self.session.flush()
        await self.session.refresh(event, ["organizer"])
        return event

    async def get(self, event_id: int) -> Event:
        event = await self.session.get(Event, event_id)
        if event is None:
            raise NotFound("No such event.")
        return event

    async def get_organized(self, organizer: Caller, event_id: int, lock: bool = False) -> Event:
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

    async def list_organized(self, organizer: Caller) -> list[Event]:
        statement = select(Event).where(Event.organizer_id == organizer.id).order_by(Event.starts_at.desc())
        return list(await self.session.scalars(statement))


def normalized(details: EventDetails) -> EventDetails:
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
    """Aware times become UTC (what is stored); naive ones stay naive for validation to refuse,
    and so do times outside the accepted range, whose conversion could overflow."""
    return moment.astimezone(UTC) if moment.tzinfo is not None and time_problem(moment) is None else moment


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
