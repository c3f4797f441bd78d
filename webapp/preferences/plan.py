"""The channel plan: for a notification about to be told to many people, which off-page channels
each of them wants it on, and whether their quiet hours defer it.

This is the one question fan-out, push and email ask of preferences. It is answered in bulk (a
fixed number of queries per chunk of recipients, never one per person) so a fan-out to 10,000
stays within its budget. The in-app inbox is not a channel here: it always receives everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.db import among
from webapp.preferences.models import ChannelPreference, EventMute, QuietHours
from webapp.preferences.quiet_hours import quiet_window_end

# Channels a user can switch per type. "browser" is the notification an open tab shows.
Channel = Literal["browser", "push", "email"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)

# What a new user gets before touching the preferences page.
DEFAULT_CHANNELS: dict[str, frozenset[Channel]] = {
    "booking_confirmed": frozenset({"browser", "email"}),
    "booking_cancelled": frozenset({"browser", "email"}),
    "event_reminder": frozenset({"browser", "push"}),
    "event_cancelled": frozenset({"browser", "push", "email"}),
    "event_updated": frozenset({"browser", "email"}),
    "group_invitation": frozenset({"browser", "email"}),
    "payment_failed": frozenset({"browser", "push", "email"}),
    "review_request": frozenset({"browser", "email"}),
    "general": frozenset({"browser", "email"}),
    "event_bookings": frozenset({"browser", "email"}),
    "review_received": frozenset({"browser", "email"}),
    "invitation_answered": frozenset({"browser", "email"}),
    "payment_refunded": frozenset({"browser", "email"}),
}

# Channels that cannot be switched off for a type: the user must hear of their money and of an
# event they hold a seat for being called off, even if they never open the site.
LOCKED_CHANNELS: dict[str, frozenset[Channel]] = {
    "payment_failed": frozenset({"email"}),
    "event_cancelled": frozenset({"email"}),
}

# Sent by email at once (as any booking site does); every other type's email waits for the digest.
IMMEDIATE_EMAIL_TYPES: frozenset[str] = frozenset(
    {"booking_confirmed", "payment_failed", "event_cancelled", "payment_refunded"}
)


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    channels: frozenset[Channel]
    # When the recipient's quiet hours end, if they are in them now and the notification is not
    # urgent; push and email wait until then. None: send now.
    deferred_until: datetime | None = None


# Types whose notification is about the event itself happening: in quiet hours they still go at
# once when the event starts before the window ends (waiting would make them useless).
URGENT_TYPES: frozenset[str] = frozenset({"event_reminder", "event_cancelled"})
IN_CHUNK = 900  # recipients per query: under every driver's bound-parameter limit


async def plan_channels(
    session: AsyncSession,
    user_ids: Sequence[int],
    type: str,
    *,
    event_id: int | None,
    event_starts_at: datetime | None,
    now: datetime,
) -> dict[int, ChannelPlan]:
    """The plan for each recipient. A recipient who muted `event_id` keeps only the locked
    channels of `type`: a mute stops the updates, never the email that the event was called off.

    Read fresh from the database on every call, in at most three queries per chunk of 900
    recipients (switched cells, mutes when there is an event, quiet hours with the zone): a
    change a user saved applies to the next notification in every process, with no cache to
    invalidate across web and worker processes. (A fan-out calls this once per chunk it writes,
    so the reads stay in step with its writes.)"""
    defaults = DEFAULT_CHANNELS.get(type, frozenset({"browser"}))
    plans: dict[int, ChannelPlan] = {}
    for start in range(0, len(user_ids), IN_CHUNK):
        chunk = list(user_ids[start : start + IN_CHUNK])
        switched = await session.execute(
            select(ChannelPreference.user_id, ChannelPreference.channel, ChannelPreference.enabled).where(
                ChannelPreference.type == type, among(session, ChannelPreference.user_id, chunk)
            )
        )
        channels: dict[int, set[Channel]] = {}
        for user_id, channel, enabled in switched:
            mine = channels.setdefault(user_id, set(defaults))
            if enabled and channel in CHANNELS:
                mine.add(channel)
            elif channel not in LOCKED_CHANNELS.get(type, frozenset()):
                mine.discard(channel)
        muted: set[int] = set()
        if event_id is not None:
            muted = set(
                await session.scalars(
                    select(EventMute.user_id).where(
                        EventMute.event_id == event_id, among(session, EventMute.user_id, chunk)
                    )
                )
            )
        windows = await session.execute(
            select(QuietHours.user_id, QuietHours.start_minute, QuietHours.end_minute, User.timezone)
            .join(User, User.id == QuietHours.user_id)
            .where(among(session, QuietHours.user_id, chunk))
        )
        deferred = {
            user_id: until
            for user_id, start_minute, end_minute, zone in windows
            if (until := _deferral(type, event_starts_at, now, zone, start_minute, end_minute)) is not None
        }
        for user_id in chunk:
            if user_id in muted:
                plans[user_id] = ChannelPlan(LOCKED_CHANNELS.get(type, frozenset()), deferred.get(user_id))
                continue
            switched_on = channels.get(user_id)
            on = defaults if switched_on is None else frozenset(switched_on)
            plans[user_id] = ChannelPlan(on, deferred.get(user_id))
    return plans


def _deferral(
    type: str, event_starts_at: datetime | None, now: datetime, zone: str, start_minute: int, end_minute: int
) -> datetime | None:
    """The end of the quiet window `now` falls in, unless the notification is urgent."""
    until = quiet_window_end(
        now, zone, time(start_minute // 60, start_minute % 60), time(end_minute // 60, end_minute % 60)
    )
    if until is None:
        return None
    if type in URGENT_TYPES and event_starts_at is not None and event_starts_at < until:
        return None
    return until
