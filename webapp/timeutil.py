"""Time zones and formatting. Storage is UTC; people see their event's or their own zone."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_valid_timezone(name: str) -> bool:
    return name in _timezones()


def common_timezones() -> list[str]:
    return sorted(tz for tz in _timezones() if "/" in tz and not tz.startswith(("Etc/", "SystemV/"))) + ["UTC"]


def in_zone(moment: datetime, zone: str) -> datetime:
    """The moment in `zone`; a stored time so far out that the zone's offset would carry it past
    year 9999 (or before year 1) stays in UTC: a page that lists it must never fail."""
    try:
        return moment.astimezone(ZoneInfo(zone))
    except OverflowError:
        return moment.astimezone(UTC)


def format_in_zone(moment: datetime, zone: str) -> str:
    local = in_zone(moment, zone)
    return local.strftime("%a %d %b %Y, %H:%M ") + (local.tzname() or zone)
