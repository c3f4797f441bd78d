"""Limits every input shares, whatever the way in (JSON API, forms, query strings, `/cable`).

What the database or the formatting code cannot hold is refused here as bad input (4xx), never
left to fail as a 500 further down:

- integers: the database's INTEGER columns are 32-bit on PostgreSQL, so ids, seqs, cursors and
  counts outside that range cannot name anything and are refused;
- times: between 2000-01-01 and 2100-01-01 (UTC). Far outside that, shifting a time into an
  event's zone overflows Python's datetime (year 9999 at +14:00), and no real event is there;
- text: no NUL character, which PostgreSQL cannot store in text (JSON string fields are `Text`;
  paths, query strings and forms are checked for every request by webapp.request_guard), so
  SQLite and PostgreSQL answer alike;
- bodies: at most MAX_REQUEST_BODY_BYTES, nested at most MAX_JSON_DEPTH deep.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from webapp.db import MAX_ROW_ID
from webapp.errors import ValidationFailed

MAX_INT32 = MAX_ROW_ID  # PostgreSQL INTEGER: every id, seq and count column

# JSON fields: the bounds are part of the decoded type, so they also appear in the OpenAPI schema.
RowIdField = Annotated[int, msgspec.Meta(ge=1, le=MAX_ROW_ID)]
# gt=-1 rather than ge=0: Litestar 2 leaves a bound of 0 out of the OpenAPI schema.
SeqField = Annotated[int, msgspec.Meta(gt=-1, le=MAX_INT32)]
Int32Field = Annotated[int, msgspec.Meta(ge=-MAX_INT32 - 1, le=MAX_INT32)]
# Text fields say in the schema what webapp.request_guard enforces for every request.
NO_NUL_PATTERN = "^[^\\x00]*$"
Text = Annotated[str, msgspec.Meta(pattern=NO_NUL_PATTERN)]

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
TIME_RANGE_MESSAGE = "Choose a time between the years 2000 and 2099."

# The largest legitimate body (an event with a 5,000-character description, percent-encoded in a
# form) is under 64 KiB.
MAX_REQUEST_BODY_BYTES = 128 * 1024
# No body the API takes is nested more than a few levels; deeper ones are refused before any
# decoder recurses into them.
MAX_JSON_DEPTH = 32


def is_int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_row_id(value: Any) -> bool:
    return is_int_in(value, 1, MAX_ROW_ID)


def parse_int(value: Any, name: str, low: int = 0, high: int = MAX_INT32) -> int | None:
    """A whole number from a form or query string, or None when empty; refuses the rest."""
    if value in (None, ""):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValidationFailed({name: "Must be a whole number."}) from None
    if not low <= number <= high:
        raise ValidationFailed({name: f"Must be between {low} and {high}."})
    return number


def time_problem(moment: datetime) -> str | None:
    """Why a time is outside the accepted range, or None. A naive time (a wall-clock time from a
    form, before its zone is known) is judged by its year, since any zone moves it under a day."""
    if moment.tzinfo is None:
        inside = EARLIEST.year <= moment.year < LATEST.year
    else:
        inside = EARLIEST <= moment < LATEST  # aware comparison: no conversion that could overflow
    return None if inside else TIME_RANGE_MESSAGE


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text, counted without decoding it (a decoder
    would recurse, and a body nested thousands deep exhausts the stack)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # the usual case, without a byte-by-byte walk
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest
