"""The quiet-hours clock, as pure functions of an injected `now`.

A window is two wall-clock times in the user's own zone ("22:00"–"07:00"); it crosses midnight
when the start is later than the end. Whether a moment is inside is read off the user's clock.
The window ends at the first moment after `now` at which that clock shows the end time or later:

- an end time that falls in a spring-forward gap (02:30 in Berlin on 29 March 2026) ends the
  window when the clock jumps past it (03:00 CEST), not an hour after;
- an end time that happens twice in an autumn fold ends the window the first time it is shown;
  if `now` is in the repeated hour before the second showing, the user's clock says they are in
  quiet hours again, and the window ends at the second showing.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", re.ASCII)


def parse_clock(text: str) -> time | None:
    """ "HH:MM" (24-hour, what an `<input type=time>` sends) as a time; None for anything else."""
    match = _CLOCK.fullmatch(text)
    return time(int(match[1]), int(match[2])) if match else None


def format_clock(moment: time) -> str:
    return moment.strftime("%H:%M")


def zone_of(name: str) -> ZoneInfo:
    """The user's zone; a name the zone database does not know (never stored by the app, but a
    row is a row) counts as UTC rather than failing a fan-out."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def in_window(clock: time, start: time, end: time) -> bool:
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end  # across midnight


def quiet_window_end(now: datetime, zone_name: str, start: time, end: time) -> datetime | None:
    """When the quiet window `now` falls in ends (UTC), or None when `now` is outside it."""
    zone = zone_of(zone_name)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start == end or not in_window(clock, start, end):
        return None
    # Across midnight and before it, the window ends tomorrow; otherwise today.
    end_day = local.date() + timedelta(days=1) if start > end and clock >= start else local.date()
    return _first_showing_after(now, zone, end_day, end)


def _first_showing_after(now: datetime, zone: ZoneInfo, day: date, clock: time) -> datetime | None:
    wall = datetime.combine(day, clock)
    showings = sorted(
        instant
        for fold in (0, 1)
        if _wall(instant := wall.replace(tzinfo=zone, fold=fold).astimezone(UTC), zone) == wall
    )
    if not showings:
        # In a gap: of the two readings, the one with the later offset is the earlier instant;
        # the clock jumps past `wall` somewhere between them.
        low, high = sorted(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
        showings = [_first_instant_reading(low, high, zone, wall)]
    later = [instant for instant in showings if instant > now]
    return later[0] if later else None


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _first_instant_reading(low: datetime, high: datetime, zone: ZoneInfo, wall: datetime) -> datetime:
    """The first whole second in (low, high] whose wall clock reads `wall` or later (the clock is
    monotonic across a gap, so a bisection finds the jump)."""
    lo, hi = 0, int((high - low).total_seconds())
    while lo < hi:
        mid = (lo + hi) // 2
        if _wall(low + timedelta(seconds=mid), zone) >= wall:
            hi = mid
        else:
            lo = mid + 1
    return low + timedelta(seconds=lo)
