"""The JSON of /api/v1/me/preferences and /api/v1/events/{id}/mute."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import msgspec

from webapp.openapi import Timestamp
from webapp.preferences.plan import LOCKED_CHANNELS
from webapp.preferences.services import Preferences, locked_reason, quiet_hours_json
from webapp.validation import Text

ChannelChanges = Annotated[
    dict[str, dict[str, Any]],
    msgspec.Meta(
        description="Cells to set, as {type: {channel: true/false}}; cells left out keep their value. "
        "Channels: browser, push, email (in-app is always on and not a cell)."
    ),
]


class QuietHoursRequest(msgspec.Struct):
    start: Annotated[Text, msgspec.Meta(description="HH:MM, 24-hour, in your own time zone", examples=["22:00"])]
    end: Annotated[
        Text, msgspec.Meta(description="HH:MM; earlier than start means the next morning", examples=["07:00"])
    ]


class PreferencesUpdate(msgspec.Struct):
    """What GET answers can be sent back as is: `locked`, `locked_reasons`, `timezone` and
    `muted_events` are read-only and ignored (mute and unmute with /api/v1/events/{id}/mute)."""

    channels: ChannelChanges | msgspec.UnsetType = msgspec.UNSET
    # null clears quiet hours; leaving the field out keeps them.
    quiet_hours: QuietHoursRequest | None | msgspec.UnsetType = msgspec.UNSET


class QuietHoursJson(TypedDict):
    start: str
    end: str


class MutedEventJson(TypedDict):
    id: int
    title: str
    starts_at: Timestamp


class PreferencesJson(TypedDict):
    # {type: {channel: on}} for every type and channel; in-app is always on and not listed.
    channels: dict[str, dict[str, bool]]
    # The cells that cannot be switched off, and why, per type.
    locked: dict[str, list[str]]
    locked_reasons: dict[str, str]
    quiet_hours: QuietHoursJson | None
    # The zone quiet hours are kept in: the account's (change it on the profile).
    timezone: str
    muted_events: list[MutedEventJson]


class MuteJson(TypedDict):
    event_id: int
    muted: bool


def preferences_json(preferences: Preferences, timezone: str) -> PreferencesJson:
    window = quiet_hours_json(preferences.quiet_hours)
    return {
        "channels": {t: {str(c): on for c, on in cells.items()} for t, cells in preferences.channels.items()},
        "locked": {t: sorted(on) for t, on in LOCKED_CHANNELS.items()},
        "locked_reasons": {t: locked_reason(t, sorted(on)[0]) for t, on in LOCKED_CHANNELS.items()},
        "quiet_hours": None if window is None else {"start": window["start"], "end": window["end"]},
        "timezone": timezone,
        "muted_events": [
            {"id": m.id, "title": m.title, "starts_at": m.starts_at.isoformat()} for m in preferences.muted_events
        ],
    }
