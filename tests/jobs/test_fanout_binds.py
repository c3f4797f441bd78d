"""A fan-out chunk's reads bind each list of recipients as one array on PostgreSQL.

`column IN (…)` with a thousand ids renders a thousand typed parameters into the statement text
on every execution (a third of the fan-out's SQLAlchemy time, bench/fanout.py's profile), and
each chunk size gives a new text, so the driver prepares the statement again. As
`column = ANY(:ids)` the text is the same for every chunk and the ids travel as one array. SQLite
has no arrays: there the same reads keep `IN`, and only their answers are checked.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from jobs.fanout import notify_announcement, notify_event_change
from tests.crowd import seed_crowd
from webapp.bookings.models import BookingAttendee
from webapp.notifications.models import Notification

CHUNK = 1_000
MOST_PARAMETERS = 12  # what one statement of a chunk may bind, whatever the chunk's size


@pytest.fixture
def statements() -> Iterator[list[tuple[str, int]]]:
    """Every statement run on any engine, with how many parameters it bound (one execution)."""
    seen: list[tuple[str, int]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not many:
            seen.append((statement, len(parameters or ())))

    event.listen(Engine, "before_cursor_execute", capture)
    yield seen
    event.remove(Engine, "before_cursor_execute", capture)


async def test_a_chunk_binds_its_recipients_as_one_array(session, engine, jobs_runtime, sent, statements):
    _, event_id = await seed_crowd(session, CHUNK, tag="binds")
    recipients = list(await session.scalars(select(BookingAttendee.user_id).order_by(BookingAttendee.user_id)))
    await session.rollback()

    update = inspect.unwrap(notify_event_change.fn)
    announce = inspect.unwrap(notify_announcement.fn)
    await update(
        event_id=event_id, version=2, kind="updated", changes={"venue": ["Arena", "Dome"]}, user_ids=recipients
    )
    await announce(
        announcement="binds-1",
        sender_id=recipients[0],
        title="Doors",
        body="Open at 7",
        event_id=event_id,
        user_ids=recipients,
    )
    await update(event_id=event_id, version=3, kind="cancelled", changes={}, user_ids=recipients)

    kinds = dict((await session.execute(select(Notification.type, func.count()).group_by(Notification.type))).all())
    assert kinds == {"event_updated": CHUNK, "general": CHUNK, "event_cancelled": CHUNK}
    if engine.dialect.name != "postgresql":
        return
    reads = [(text, count) for text, count in statements if not text.lstrip().upper().startswith("INSERT")]
    widest = max(reads, key=lambda read: read[1])
    assert widest[1] <= MOST_PARAMETERS, widest[0][:300]
