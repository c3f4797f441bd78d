"""The channel plan against a real database: defaults, switched cells, mutes, quiet hours in the
user's own zone with an injected clock, urgency, and a fixed number of queries however many
recipients there are."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.integration.rows import insert_event
from webapp.auth.models import User
from webapp.preferences.plan import DEFAULT_CHANNELS, ChannelPlan, plan_channels
from webapp.preferences.services import PreferenceService

# A winter evening: 21:30 UTC is 22:30 in Berlin, 16:30 in New York.
EVENING = datetime(2026, 1, 15, 21, 30, tzinfo=UTC)


async def add_users(session: AsyncSession, count: int, timezone: str = "UTC") -> list[int]:
    start = (await session.scalar(select(User.id).order_by(User.id.desc()).limit(1))) or 0
    rows = [
        {
            "email": f"plan{start + i}@example.com",
            "name": f"Plan {i}",
            "password_hash": "x",
            "timezone": timezone,
            "role": "member",
            "created_at": datetime.now(UTC),
        }
        for i in range(count)
    ]
    await session.execute(insert(User), rows)
    await session.commit()
    ids = await session.scalars(select(User.id).where(User.email.like("plan%")).order_by(User.id))
    return list(ids)[-count:]


@contextmanager
def counted_statements(session: AsyncSession) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = session.bind.sync_engine  # type: ignore[union-attr]

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's explicit transaction start is no query
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def plan(session: AsyncSession, user_ids: list[int], type_: str, **kwargs: Any) -> dict[int, ChannelPlan]:
    kwargs.setdefault("event_id", None)
    kwargs.setdefault("event_starts_at", None)
    kwargs.setdefault("now", EVENING)
    return await plan_channels(session, user_ids, type_, **kwargs)


async def test_a_user_who_changed_nothing_gets_the_defaults(session: AsyncSession) -> None:
    (user,) = await add_users(session, 1)
    result = await plan(session, [user], "booking_confirmed")
    assert result == {user: ChannelPlan(DEFAULT_CHANNELS["booking_confirmed"])}


async def test_switched_cells_change_only_that_user_and_type(session: AsyncSession) -> None:
    alice, bob = await add_users(session, 2)
    prefs = PreferenceService(session)
    await prefs.set_channel(alice, "event_updated", "email", False)
    await prefs.set_channel(alice, "event_updated", "push", True)
    await session.commit()
    result = await plan(session, [alice, bob], "event_updated")
    assert result[alice].channels == {"browser", "push"}
    assert result[bob].channels == DEFAULT_CHANNELS["event_updated"]
    assert (await plan(session, [alice], "booking_confirmed"))[alice].channels == {"browser", "email"}


async def test_a_muted_event_gets_no_channel_for_its_muter_only(session: AsyncSession) -> None:
    alice, bob = await add_users(session, 2)
    concert = await insert_event(session, alice, starts_in=timedelta(days=3))
    other = await insert_event(session, alice, starts_in=timedelta(days=3))
    await PreferenceService(session).mute_event(alice, concert.id)
    await session.commit()
    result = await plan(session, [alice, bob], "event_updated", event_id=concert.id)
    assert result[alice] == ChannelPlan(frozenset())
    assert result[bob].channels == DEFAULT_CHANNELS["event_updated"]
    assert (await plan(session, [alice], "event_updated", event_id=other.id))[alice].channels
    # A mute is about that event's news; a notification about nothing in particular still goes.
    assert (await plan(session, [alice], "general"))[alice].channels
    # A mute stops the chatter, not the locked email that the event was called off.
    cancelled = await plan(session, [alice], "event_cancelled", event_id=concert.id)
    assert cancelled[alice] == ChannelPlan(frozenset({"email"}))


async def test_quiet_hours_defer_to_the_end_of_the_window_in_the_users_zone(session: AsyncSession) -> None:
    (berlin,) = await add_users(session, 1, "Europe/Berlin")
    (new_york,) = await add_users(session, 1, "America/New_York")
    prefs = PreferenceService(session)
    await prefs.set_quiet_hours(berlin, "22:00", "07:00")
    await prefs.set_quiet_hours(new_york, "22:00", "07:00")
    await session.commit()
    result = await plan(session, [berlin, new_york], "event_updated")
    # 22:30 in Berlin: until 07:00 CET on the 16th = 06:00 UTC. 16:30 in New York: not quiet.
    assert result[berlin].deferred_until == datetime(2026, 1, 16, 6, 0, tzinfo=UTC)
    assert result[berlin].channels == DEFAULT_CHANNELS["event_updated"]
    assert result[new_york].deferred_until is None


async def test_quiet_hours_across_the_spring_and_autumn_changes(session: AsyncSession) -> None:
    (user,) = await add_users(session, 1, "Europe/Berlin")
    await PreferenceService(session).set_quiet_hours(user, "22:00", "07:00")
    await session.commit()
    spring = await plan(session, [user], "event_updated", now=datetime(2026, 3, 28, 23, 0, tzinfo=UTC))
    autumn = await plan(session, [user], "event_updated", now=datetime(2026, 10, 24, 23, 0, tzinfo=UTC))
    assert spring[user].deferred_until == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)  # 07:00 CEST
    assert autumn[user].deferred_until == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)  # 07:00 CET


async def test_a_reminder_or_cancellation_for_an_event_before_the_window_ends_goes_now(
    session: AsyncSession,
) -> None:
    (user,) = await add_users(session, 1, "Europe/Berlin")
    event_row = await insert_event(session, user, starts_in=timedelta(days=3))
    await PreferenceService(session).set_quiet_hours(user, "22:00", "07:00")
    await session.commit()
    window_end = datetime(2026, 1, 16, 6, 0, tzinfo=UTC)
    early = window_end - timedelta(minutes=1)
    for type_ in ("event_reminder", "event_cancelled"):
        urgent = await plan(session, [user], type_, event_id=event_row.id, event_starts_at=early)
        assert urgent[user].deferred_until is None, type_
        # Starting when the window ends or later: it waits like anything else.
        calm = await plan(session, [user], type_, event_id=event_row.id, event_starts_at=window_end)
        assert calm[user].deferred_until == window_end, type_
    # Urgency is about the event itself: an update to an event starting soon still waits.
    update = await plan(session, [user], "event_updated", event_id=event_row.id, event_starts_at=early)
    assert update[user].deferred_until == window_end


async def test_a_change_applies_to_the_very_next_plan(session: AsyncSession, engine: Any) -> None:
    (user,) = await add_users(session, 1)
    assert "email" in (await plan(session, [user], "event_updated"))[user].channels
    await session.commit()  # the fan-out's unit of work ends
    # Written by another session (another process: the web app) and committed.
    from webapp.db import create_sessionmaker

    async with create_sessionmaker(engine)() as web:
        await PreferenceService(web).set_channel(user, "event_updated", "email", False)
        await web.commit()
    assert "email" not in (await plan(session, [user], "event_updated"))[user].channels


async def test_two_thousand_recipients_take_a_fixed_number_of_queries(session: AsyncSession) -> None:
    users = await add_users(session, 2000, "Europe/Berlin")
    concert = await insert_event(session, users[0], starts_in=timedelta(days=3))
    prefs = PreferenceService(session)
    for user in users[::7]:
        await prefs.set_channel(user, "event_updated", "push", True)
    for user in users[::11]:
        await prefs.mute_event(user, concert.id)
    for user in users[::5]:
        await prefs.set_quiet_hours(user, "22:00", "07:00")
    await session.commit()
    with counted_statements(session) as statements:
        result = await plan(session, users, "event_updated", event_id=concert.id)
    # Three reads (switched cells, mutes, quiet hours with zones) per chunk of 900: 3 chunks.
    assert len(statements) == 9, statements
    assert len(result) == 2000
    assert result[users[11]].channels == frozenset()
    assert result[users[7]].channels == {"browser", "email", "push"}
    assert result[users[5]].deferred_until == datetime(2026, 1, 16, 6, 0, tzinfo=UTC)
    assert result[users[1]] == ChannelPlan(DEFAULT_CHANNELS["event_updated"])
    with counted_statements(session) as statements:
        await plan(session, users, "general")
    assert len(statements) == 6  # no event, no mutes to read


async def test_no_recipients_no_queries(session: AsyncSession) -> None:
    with counted_statements(session) as statements:
        assert await plan(session, [], "general") == {}
    assert statements == []
