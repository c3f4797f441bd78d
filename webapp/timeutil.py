"""Time zones and formatting. Storage is UTC; people see their event's or their own zone."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

# Where the list of canonical zones is read: the tzdata package (a dependency, so always there),
# else the system's database.
ZONE_TABLES = (("tzdata.zoneinfo", "zone.tab"), (None, "/usr/share/zoneinfo/zone.tab"))


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_valid_timezone(name: str) -> bool:
    return name in _timezones()


@lru_cache(maxsize=1)
def common_timezones() -> list[str]:
    """The zones people choose from: those of the time zone database's zone.tab, one (or a few)
    per country, named after a city of it, plus UTC. The database's other names (about 180 of
    the ~600 zoneinfo knows) are backward-compatibility links such as US/Eastern,
    Asia/Calcutta or GB, and the Etc/ and SystemV/ zones: still accepted (is_valid_timezone),
    not offered. zone.tab rather than zone1970.tab: the latter folds countries whose clocks
    have agreed since 1970 into one zone (Europe/Oslo into Europe/Berlin), and people look for
    their own country's city."""
    for package, name in ZONE_TABLES:
        try:
            text = (resources.files(package) / name if package else Path(name)).read_text(encoding="utf-8")
        except (OSError, ModuleNotFoundError):
            continue
        zones = {line.split("\t")[2] for line in text.splitlines() if line and not line.startswith("#")}
        return sorted(zones & _timezones()) + ["UTC"]
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
