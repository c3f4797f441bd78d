from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

import msgspec

from webapp.auth.schemas import UserRef
from webapp.events.models import Event
from webapp.openapi import Timestamp
from webapp.validation import Int32Field, Text


class EventCreate(msgspec.Struct):
    title: Text
    venue: Text
    starts_at: datetime
    ends_at: datetime
    timezone: Text
    capacity: Int32Field
    price_cents: Int32Field
    currency: Text
    description: Text = ""


class EventPatch(msgspec.Struct):
    title: Text | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    venue: Text | msgspec.UnsetType = msgspec.UNSET
    starts_at: datetime | msgspec.UnsetType = msgspec.UNSET
    ends_at: datetime | msgspec.UnsetType = msgspec.UNSET
    timezone: Text | msgspec.UnsetType = msgspec.UNSET
    capacity: Int32Field | msgspec.UnsetType = msgspec.UNSET
    price_cents: Int32Field | msgspec.UnsetType = msgspec.UNSET
    currency: Text | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__struct_fields__ if getattr(self, f) is not msgspec.UNSET}


class EventJson(TypedDict):
    id: int
    title: str
    description: str
    venue: str
    starts_at: Timestamp
    ends_at: Timestamp
    timezone: str
    capacity: int
    seats_left: int
    price_cents: int
    currency: str
    status: str
    version: int
    organizer: UserRef


class EventPage(TypedDict):
    """Upcoming events, soonest first; pass `next_cursor` as `cursor` for the next page (null: no more)."""

    items: list[EventJson]
    next_cursor: str | None


def event_json(event: Event) -> EventJson:
    return {
        "id": event.id,
        "title": event.title,
        "description": event.description,
        "venue": event.venue,
        "starts_at": event.starts_at.isoformat(),
        "ends_at": event.ends_at.isoformat(),
        "timezone": event.timezone,
        "capacity": event.capacity,
        "seats_left": event.seats_left,
        "price_cents": event.price_cents,
        "currency": event.currency,
        "status": event.status,
        "version": event.version,
        "organizer": {"id": event.organizer.id, "name": event.organizer.name},
    }
