"""The quiet-hours clock: whether a moment falls in a user's window, and when that window ends,
in the user's own zone, across midnight and both DST changes (Europe/Berlin, 2026: clocks jump
02:00 → 03:00 on 29 March and fall back 03:00 → 02:00 on 25 October)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from webapp.preferences.quiet_hours import parse_clock, quiet_window_end


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


NIGHT = (time(22, 0), time(7, 0))


def test_outside_the_window_nothing_is_deferred() -> None:
    # 12:00 UTC is 13:00 in Berlin in winter.
    assert quiet_window_end(utc(2026, 1, 15, 12, 0), "Europe/Berlin", *NIGHT) is None


def test_before_midnight_the_window_ends_the_next_morning() -> None:
    # 22:30 UTC = 23:30 CET on 15 January; the window ends 07:00 CET on the 16th = 06:00 UTC.
    assert quiet_window_end(utc(2026, 1, 15, 22, 30), "Europe/Berlin", *NIGHT) == utc(2026, 1, 16, 6, 0)


def test_after_midnight_the_window_ends_the_same_morning() -> None:
    assert quiet_window_end(utc(2026, 1, 16, 2, 0), "Europe/Berlin", *NIGHT) == utc(2026, 1, 16, 6, 0)


def test_the_start_is_inside_and_the_end_is_outside() -> None:
    assert quiet_window_end(utc(2026, 1, 15, 21, 0), "Europe/Berlin", *NIGHT) == utc(2026, 1, 16, 6, 0)
    assert quiet_window_end(utc(2026, 1, 16, 6, 0), "Europe/Berlin", *NIGHT) is None


def test_a_window_within_one_day() -> None:
    lunch = (time(12, 0), time(13, 30))
    assert quiet_window_end(utc(2026, 1, 15, 11, 15), "Europe/Berlin", *lunch) == utc(2026, 1, 15, 12, 30)
    assert quiet_window_end(utc(2026, 1, 15, 10, 59), "Europe/Berlin", *lunch) is None
    assert quiet_window_end(utc(2026, 1, 15, 12, 30), "Europe/Berlin", *lunch) is None


def test_the_night_the_clocks_go_forward_ends_at_local_seven() -> None:
    # 23:00 CET on 28 March; 07:00 on the 29th is already CEST (UTC+2) = 05:00 UTC: a night an hour
    # shorter in UTC, the same on the user's clock.
    assert quiet_window_end(utc(2026, 3, 28, 22, 0), "Europe/Berlin", *NIGHT) == utc(2026, 3, 29, 5, 0)


def test_the_night_the_clocks_go_back_ends_at_local_seven() -> None:
    # 23:00 CEST on 24 October; 07:00 on the 25th is CET (UTC+1) = 06:00 UTC.
    assert quiet_window_end(utc(2026, 10, 24, 21, 0), "Europe/Berlin", *NIGHT) == utc(2026, 10, 25, 6, 0)


def test_an_end_in_the_spring_gap_is_the_moment_the_clock_jumps() -> None:
    # 02:30 does not exist in Berlin on 29 March: the clock goes from 01:59:59 CET to 03:00 CEST
    # (01:00 UTC). The window ends then, the first moment the clock shows 02:30 or later.
    window = (time(23, 0), time(2, 30))
    assert quiet_window_end(utc(2026, 3, 28, 23, 30), "Europe/Berlin", *window) == utc(2026, 3, 29, 1, 0)
    # A minute before the jump the user is still in the window; at the jump no longer.
    assert quiet_window_end(utc(2026, 3, 29, 0, 59), "Europe/Berlin", *window) == utc(2026, 3, 29, 1, 0)
    assert quiet_window_end(utc(2026, 3, 29, 1, 0), "Europe/Berlin", *window) is None


def test_a_start_in_the_spring_gap_begins_when_the_clock_jumps_past_it() -> None:
    window = (time(2, 30), time(6, 0))
    assert quiet_window_end(utc(2026, 3, 29, 0, 59), "Europe/Berlin", *window) is None  # 01:59 CET
    assert quiet_window_end(utc(2026, 3, 29, 1, 0), "Europe/Berlin", *window) == utc(2026, 3, 29, 4, 0)


def test_an_end_in_the_autumn_fold_is_its_first_occurrence() -> None:
    # 02:30 happens twice on 25 October: 00:30 UTC (CEST) and 01:30 UTC (CET). The window ends
    # the first time the clock shows it.
    window = (time(23, 0), time(2, 30))
    assert quiet_window_end(utc(2026, 10, 24, 22, 0), "Europe/Berlin", *window) == utc(2026, 10, 25, 0, 30)


def test_in_the_repeated_hour_the_clock_decides_again() -> None:
    # 01:15 UTC is 02:15 CET, the second pass of that hour: the user's clock reads 02:15, inside
    # 23:00–02:30, so they are in quiet hours again until it shows 02:30 a second time (01:30 UTC).
    window = (time(23, 0), time(2, 30))
    assert quiet_window_end(utc(2026, 10, 25, 1, 15), "Europe/Berlin", *window) == utc(2026, 10, 25, 1, 30)
    # Between the two passes (00:45 UTC = 02:45 CEST, then 02:00 CET again at 01:00 UTC) it is not.
    assert quiet_window_end(utc(2026, 10, 25, 0, 45), "Europe/Berlin", *window) is None


def test_zones_west_of_utc_and_without_dst() -> None:
    # 03:00 UTC on 15 Jan is 22:00 EST on the 14th; the window ends 07:00 EST = 12:00 UTC.
    assert quiet_window_end(utc(2026, 1, 15, 3, 0), "America/New_York", *NIGHT) == utc(2026, 1, 15, 12, 0)
    assert quiet_window_end(utc(2026, 1, 15, 23, 0), "UTC", *NIGHT) == utc(2026, 1, 16, 7, 0)


def test_an_unknown_zone_counts_as_utc() -> None:
    assert quiet_window_end(utc(2026, 1, 15, 23, 0), "Not/AZone", *NIGHT) == utc(2026, 1, 16, 7, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22:00", time(22, 0)),
        ("07:05", time(7, 5)),
        ("7:05", time(7, 5)),
        ("23:59", time(23, 59)),
        ("00:00", time(0, 0)),
    ],
)
def test_clock_times_are_read_as_hours_and_minutes(text: str, expected: time) -> None:
    assert parse_clock(text) == expected


@pytest.mark.parametrize("text", ["", "24:00", "12:60", "noon", "12", "12:00:00", "-1:00", "1:2", "１２:００"])
def test_anything_else_is_not_a_clock_time(text: str) -> None:
    assert parse_clock(text) is None
