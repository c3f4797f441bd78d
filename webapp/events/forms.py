"""The event form: local date-times in the event's own time zone, prices in major units.

A local time is never shifted silently: one the clocks skip (spring forward) or pass twice (fall
back) is refused with a message naming it. The JSON API takes times with their UTC offset, so
it never has to guess.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from webapp.errors import ValidationFailed
from webapp.events.models import Event
from webapp.events.services import EventDetails
from webapp.timeutil import in_zone, is_valid_timezone
from webapp.validation import time_problem

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


def _offset(moment: datetime) -> str:
    text = moment.strftime("%z")  # +0100
    return f"UTC{text[:3]}:{text[3:]}"


def local_time_problem(wall: datetime, zone: str) -> str | None:
    """Why a naive wall-clock time cannot stand for one instant in `zone`, or None if it can."""
    first = wall.replace(tzinfo=ZoneInfo(zone), fold=0)
    second = first.replace(fold=1)
    shown = wall.strftime("%Y-%m-%d %H:%M")
    if first.astimezone(UTC).astimezone(first.tzinfo).replace(tzinfo=None) != wall:
        return f"{shown} does not exist in {zone} (clocks go forward). Choose another time."
    if first.utcoffset() != second.utcoffset():
        return (
            f"{shown} occurs twice in {zone} (clocks go back), at {_offset(first)} and again at "
            f"{_offset(second)}. Choose a time outside the repeated period."
        )
    return None


def parse_event_form(form: dict[str, str], current: Event | None = None) -> EventDetails:
    """`current` is the event being edited: a repeated local time it already holds (set with an
    explicit offset through the API) keeps its instant instead of being refused."""
    errors: dict[str, str] = {}
    zone = form.get("timezone", "").strip()
    if not is_valid_timezone(zone):
        errors["timezone"] = "Choose an IANA time zone (e.g. Europe/Berlin)."
        zone = "UTC"

    def local(name: str) -> datetime:
        try:
            wall = datetime.strptime(form.get(name, "").strip(), LOCAL_FORMAT)
        except ValueError:
            errors[name] = "Enter a date and time."
            return datetime.now(ZoneInfo(zone))
        if problem := time_problem(wall):  # before any conversion, which could overflow
            errors[name] = problem
            return datetime.now(ZoneInfo(zone))
        if current is not None and current.timezone == zone:
            held: datetime = getattr(current, name)
            if in_zone(held, zone).replace(tzinfo=None, second=0, microsecond=0) == wall:
                return held  # unchanged on the form: the stored instant stands
        problem = local_time_problem(wall, zone)
        if problem:
            errors[name] = problem
        return wall.replace(tzinfo=ZoneInfo(zone))

    starts_at, ends_at = local("starts_at"), local("ends_at")
    capacity = 0
    try:
        capacity = int(form.get("capacity", ""))
    except ValueError:
        errors["capacity"] = "Enter a whole number of seats."
    price_cents = 0
    try:
        price = Decimal(form.get("price", "0").strip() or "0")
        if price != price.quantize(Decimal("0.01")) or not price.is_finite():
            raise InvalidOperation
        price_cents = int(price * 100)
    except (InvalidOperation, ValueError):
        errors["price"] = "Enter a price such as 25.00."
    if errors:
        raise ValidationFailed(errors)
    return EventDetails(
        title=form.get("title", ""),
        description=form.get("description", ""),
        venue=form.get("venue", ""),
        starts_at=starts_at,
        ends_at=ends_at,
        timezone=zone,
        capacity=capacity,
        price_cents=price_cents,
        currency=form.get("currency", "EUR"),
    )


def event_form_values(event: Event) -> dict[str, str]:
    return {
        "title": event.title,
        "description": event.description,
        "venue": event.venue,
        "starts_at": in_zone(event.starts_at, event.timezone).strftime(LOCAL_FORMAT),
        "ends_at": in_zone(event.ends_at, event.timezone).strftime(LOCAL_FORMAT),
        "timezone": event.timezone,
        "capacity": str(event.capacity),
        "price": f"{event.price_cents / 100:.2f}",
        "currency": event.currency,
    }


def form_errors_for(fields: dict[str, str]) -> dict[str, str]:
    """Service errors speak of price_cents; the form's field is price."""
    return {("price" if key == "price_cents" else key): message for key, message in fields.items()}
