"""Keyset pages for the API's lists: `limit`, an opaque `cursor`, and `next_cursor` (null on the
last page).

A cursor names the last row of the page before: its sort time and its id, so rows that share a
time are neither skipped nor repeated, and rows added meanwhile do not shift the pages the way
an offset would. (Notifications page by their per-user `seq`, which is already unique.)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from webapp.db import MAX_ROW_ID
from webapp.errors import ValidationFailed

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_CURSOR_LENGTH = 200

Row = TypeVar("Row")


@dataclass(frozen=True)
class Cursor:
    moment: datetime
    row_id: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.moment.isoformat()}|{self.row_id}".encode()).decode().rstrip("=")


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationFailed({"limit": f"must be from 1 to {MAX_PAGE_SIZE}"})


def decode_cursor(text: str | None) -> Cursor | None:
    """The cursor a client sent back, or a 422 naming `cursor` when it is not one we made."""
    if text is None or text == "":
        return None
    try:
        if len(text) > MAX_CURSOR_LENGTH:
            raise ValueError
        moment_text, _, id_text = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().rpartition("|")
        moment, row_id = datetime.fromisoformat(moment_text), int(id_text)
        if moment.tzinfo is None or not 1 <= row_id <= MAX_ROW_ID:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise ValidationFailed({"cursor": "is not a cursor from this list; use next_cursor as given"}) from None
    return Cursor(moment, row_id)


def page_of(rows: Sequence[Row], limit: int, key: Callable[[Row], Cursor]) -> tuple[list[Row], str | None]:
    """`rows` were fetched with `limit + 1`: the extra one only says that another page exists."""
    page = list(rows[:limit])
    return page, key(page[-1]).encode() if len(rows) > limit else None
