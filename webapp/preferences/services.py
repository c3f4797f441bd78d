"""A user's preferences: which channel tells them which type, muted events, quiet hours.

The grid is DEFAULT_CHANNELS with the user's switched cells on top; a cell set back to its
default loses its row. Every write validates the whole request before it changes anything.
Services take the caller's session and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from enum import Enum
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.db import insert_on_conflict, utcnow
from webapp.errors import NotFound, ValidationFailed
from webapp.events.models import Event
from webapp.preferences.models import ChannelPreference, EventMute, QuietHours
from webapp.preferences.plan import CHANNELS, DEFAULT_CHANNELS, LOCKED_CHANNELS, Channel
from webapp.preferences.quiet_hours import format_clock, parse_clock

# The unsubscribe link of a digest email switches off the email of every type it may gather.
DIGEST = "digest"
PREFERENCES = cast(Table, ChannelPreference.__table__)
MUTES = cast(Table, EventMute.__table__)
QUIET_HOURS = cast(Table, QuietHours.__table__)

Grid = dict[str, dict[Channel, bool]]


def locked_reason(type_: str, channel: str) -> str:
    """Why a cell cannot be switched off, in words the page and the API both use."""
    if type_ == "payment_failed":
        return "A failed payment can cost you your seat, so we always email you about it."
    if type_ == "event_cancelled":
        return "When an event you booked is called off, we always email you, even if you never open Tidings."
    return f"{channel} cannot be switched off for {type_}."


@dataclass(frozen=True, slots=True)
class MutedEvent:
    id: int
    title: str
    starts_at: datetime
    timezone: str


@dataclass(frozen=True, slots=True)
class Preferences:
    channels: Grid
    quiet_hours: tuple[time, time] | None
    muted_events: list[MutedEvent]


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """What one-click unsubscribe did: the types whose email it switched off, and those it left
    on because they are locked."""

    switched_off: list[str]
    kept: list[str]


def default_grid() -> Grid:
    return {type_: {channel: channel in on for channel in CHANNELS} for type_, on in DEFAULT_CHANNELS.items()}


class Keep(Enum):
    """Leave this part of the preferences as it is."""

    KEEP = "keep"


def _channel_errors(changes: Mapping[str, Any]) -> dict[str, str]:
    """Why each refused cell is refused, by field name; empty when all may be set."""
    errors: dict[str, str] = {}
    for type_, cells in changes.items():
        if type_ not in DEFAULT_CHANNELS:
            errors[f"channels.{type_}"] = f"unknown notification type {type_!r}"
            continue
        if not isinstance(cells, Mapping):
            errors[f"channels.{type_}"] = "must be an object of channel: true or false"
            continue
        for channel, enabled in cells.items():
            key = f"channels.{type_}.{channel}"
            if channel not in CHANNELS:
                errors[key] = f"unknown channel {channel!r}; the channels are {', '.join(CHANNELS)}"
            elif not isinstance(enabled, bool):
                errors[key] = "must be true or false"
            elif not enabled and channel in LOCKED_CHANNELS.get(type_, frozenset()):
                errors[key] = f"cannot be switched off: {locked_reason(type_, channel)}"
    return errors


def _window(start: str, end: str) -> tuple[tuple[time, time] | None, dict[str, str]]:
    starts, ends = parse_clock(start), parse_clock(end)
    errors = {}
    if starts is None:
        errors["quiet_hours.start"] = "must be a time of day as HH:MM (24-hour)"
    if ends is None:
        errors["quiet_hours.end"] = "must be a time of day as HH:MM (24-hour)"
    elif starts == ends:
        errors["quiet_hours.end"] = "must differ from the start"
    if starts is None or ends is None or errors:
        return None, errors
    return (starts, ends), errors


class PreferenceService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- channels -------------------------------------------------------------------------

    async def grid(self, user_id: int) -> Grid:
        grid = default_grid()
        rows = await self.session.execute(
            select(ChannelPreference.type, ChannelPreference.channel, ChannelPreference.enabled).where(
                ChannelPreference.user_id == user_id
            )
        )
        for type_, channel, enabled in rows:
            if type_ in grid and channel in CHANNELS:  # a type since retired stays harmlessly stored
                grid[type_][channel] = enabled
        return grid

    async def update_channels(self, user_id: int, changes: Mapping[str, Any]) -> None:
        """Sets the given cells; every other cell keeps its value. One bad cell refuses them all
        (422 naming each, as `channels.<type>` or `channels.<type>.<channel>`)."""
        await self.update(user_id, channels=changes)

    async def update(
        self,
        user_id: int,
        *,
        channels: Mapping[str, Any] | None = None,
        quiet_hours: tuple[str, str] | None | Keep = Keep.KEEP,
    ) -> None:
        """Cells and quiet hours in one go: everything is checked before anything changes.
        quiet_hours None clears them; Keep.KEEP leaves them as they are."""
        errors = _channel_errors(channels or {})
        window = None
        if isinstance(quiet_hours, tuple):
            window, quiet_errors = _window(*quiet_hours)
            errors.update(quiet_errors)
        if errors:
            raise ValidationFailed(errors)
        for type_, cells in (channels or {}).items():
            for channel, enabled in cells.items():
                await self._store(user_id, type_, channel, enabled)
        if window is not None:
            await self._store_window(user_id, *window)
        elif quiet_hours is None:
            await self.clear_quiet_hours(user_id)

    async def set_channel(self, user_id: int, type_: str, channel: str, enabled: bool) -> None:
        await self.update_channels(user_id, {type_: {channel: enabled}})

    async def _store(self, user_id: int, type_: str, channel: Channel, enabled: bool) -> None:
        if enabled == (channel in DEFAULT_CHANNELS[type_]):
            await self.session.execute(
                delete(ChannelPreference).where(
                    ChannelPreference.user_id == user_id,
                    ChannelPreference.type == type_,
                    ChannelPreference.channel == channel,
                )
            )
            return
        await self._upsert(PREFERENCES, {"user_id": user_id, "type": type_, "channel": channel, "enabled": enabled})

    async def _upsert(self, table: Table, values: dict[str, Any], update: tuple[str, ...] = ("enabled",)) -> None:
        """Insert, or update `update` where the row exists (nothing when empty): two tabs saving
        at once both succeed, the later one winning, where a read-then-insert would collide."""
        make_insert = insert_on_conflict(self.session)
        statement = make_insert(table).values(**values)
        keys = [column.name for column in table.primary_key.columns]
        if update:
            changes = {name: statement.excluded[name] for name in update}
            await self.session.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))
        else:
            await self.session.execute(statement.on_conflict_do_nothing(index_elements=keys))

    async def unsubscribe(self, user_id: int, target: str) -> Unsubscribed:
        """Email off for one type, or (target "digest") for every type; locked ones stay on.
        An unknown target is a 404: the link was signed by us, but for a type since retired."""
        if target == DIGEST:
            types = list(DEFAULT_CHANNELS)
        elif target in DEFAULT_CHANNELS:
            types = [target]
        else:
            raise NotFound("This unsubscribe link is for notifications that no longer exist.")
        if await self.session.get(User, user_id) is None:
            raise NotFound("This unsubscribe link is for an account that no longer exists.")
        kept = [t for t in types if "email" in LOCKED_CHANNELS.get(t, frozenset())]
        switched_off = [t for t in types if t not in kept]
        for type_ in switched_off:
            await self._store(user_id, type_, "email", False)
        return Unsubscribed(switched_off=switched_off, kept=kept)

    # ---- muted events ---------------------------------------------------------------------

    async def _event(self, event_id: int) -> Event:
        event = await self.session.get(Event, event_id)
        if event is None:
            raise NotFound("No such event.")
        return event

    async def mute_event(self, user_id: int, event_id: int) -> Event:
        event = await self._event(event_id)
        await self._upsert(MUTES, {"user_id": user_id, "event_id": event_id, "created_at": utcnow()}, update=())
        return event

    async def unmute_event(self, user_id: int, event_id: int) -> Event:
        event = await self._event(event_id)
        await self.session.execute(
            delete(EventMute).where(EventMute.user_id == user_id, EventMute.event_id == event_id)
        )
        return event

    async def is_muted(self, user_id: int, event_id: int) -> bool:
        found = await self.session.scalar(
            select(EventMute.event_id).where(EventMute.user_id == user_id, EventMute.event_id == event_id)
        )
        return found is not None

    async def muted_events(self, user_id: int) -> list[MutedEvent]:
        rows = await self.session.execute(
            select(Event.id, Event.title, Event.starts_at, Event.timezone)
            .join(EventMute, EventMute.event_id == Event.id)
            .where(EventMute.user_id == user_id)
            .order_by(Event.starts_at, Event.id)
        )
        return [MutedEvent(*row) for row in rows]

    # ---- quiet hours ----------------------------------------------------------------------

    async def quiet_hours(self, user_id: int) -> tuple[time, time] | None:
        row = await self.session.get(QuietHours, user_id)
        if row is None:
            return None
        return _clock(row.start_minute), _clock(row.end_minute)

    async def set_quiet_hours(self, user_id: int, start: str, end: str) -> tuple[time, time]:
        """From "HH:MM" texts, in the user's own zone; start == end is refused (it would mean
        either never or always)."""
        window, errors = _window(start, end)
        if errors or window is None:
            raise ValidationFailed(errors)
        await self._store_window(user_id, *window)
        return window

    async def _store_window(self, user_id: int, starts: time, ends: time) -> None:
        window = {"user_id": user_id, "start_minute": _minute(starts), "end_minute": _minute(ends)}
        await self._upsert(QUIET_HOURS, window, update=("start_minute", "end_minute"))

    async def clear_quiet_hours(self, user_id: int) -> None:
        await self.session.execute(delete(QuietHours).where(QuietHours.user_id == user_id))

    # ---- everything -----------------------------------------------------------------------

    async def preferences(self, user_id: int) -> Preferences:
        return Preferences(
            channels=await self.grid(user_id),
            quiet_hours=await self.quiet_hours(user_id),
            muted_events=await self.muted_events(user_id),
        )


async def user_zone(session: AsyncSession, user_id: int) -> str:
    zone = await session.scalar(select(User.timezone).where(User.id == user_id))
    return zone or "UTC"


def quiet_hours_json(window: tuple[time, time] | None) -> dict[str, str] | None:
    return None if window is None else {"start": format_clock(window[0]), "end": format_clock(window[1])}


def _minute(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _clock(minute: int) -> time:
    return time(minute // 60, minute % 60)
