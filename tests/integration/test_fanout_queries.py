"""A fan-out chunk's reads look up its own recipients, not the whole event once per recipient.

`attending_since` for a chunk of 1,000 people of a 10,000-seat event took 1 s on SQLite (10 s of
a 10-chunk fan-out): its planner walked the event's bookings and looked each of them up with
every one of the chunk's ids. The chunk's seats are now found first. Checked with the planner on
SQLite (where it went wrong) and for the answer on both databases.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select

from tests.crowd import seed_crowd
from webapp.bookings.models import BookingAttendee
from webapp.notifications.announcements import attending_since

SEATS = 3_000
CHUNK = 1_000


async def test_a_chunk_of_attendees_is_found_through_its_own_seats(session, engine):
    _, event_id = await seed_crowd(session, SEATS, tag="chunk-query")
    everyone = list(await session.scalars(select(BookingAttendee.user_id).order_by(BookingAttendee.user_id)))
    chunk = everyone[CHUNK : 2 * CHUNK]
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "booking_attendees" in statement and not statement.startswith("EXPLAIN"):
            captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        since = await attending_since(session, event_id, chunk)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    await session.commit()  # on SQLite the session's transaction holds the write lock the EXPLAIN needs
    assert sorted(since) == chunk and all(at is not None for at in since.values())

    [(statement, parameters)] = captured
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL's planner, with statistics, was never the problem; the answer is checked above
    async with engine.connect() as conn:
        steps = [row[-1] for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    attendee_steps = [step for step in steps if "booking_attendees" in step]
    assert attendee_steps, steps
    # Each of the chunk's people is looked up once by user id, never once per booking of the event.
    assert all("(user_id=?)" in step for step in attendee_steps), steps
