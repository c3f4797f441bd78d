"""PreferenceService against a real database: only differences from the defaults are stored,
writes are all-or-nothing, mutes need a real event, unsubscribe spares locked types."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.integration.rows import insert_event
from tests.integration.test_preferences_plan import add_users
from webapp.errors import NotFound, ValidationFailed
from webapp.preferences.models import ChannelPreference
from webapp.preferences.plan import DEFAULT_CHANNELS, LOCKED_CHANNELS
from webapp.preferences.services import Keep, PreferenceService


async def stored_cells(session: AsyncSession, user_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(ChannelPreference).where(ChannelPreference.user_id == user_id)
        )
        or 0
    )


async def test_a_cell_set_back_to_its_default_leaves_no_row(session: AsyncSession) -> None:
    (user,) = await add_users(session, 1)
    service = PreferenceService(session)
    await service.set_channel(user, "event_updated", "email", False)
    await service.set_channel(user, "event_updated", "email", False)  # twice: one row, no conflict
    assert await stored_cells(session, user) == 1
    assert (await service.grid(user))["event_updated"]["email"] is False
    await service.set_channel(user, "event_updated", "email", True)
    assert await stored_cells(session, user) == 0
    assert await service.grid(user) == {
        t: {c: c in on for c in ("browser", "push", "email")} for t, on in DEFAULT_CHANNELS.items()
    }


async def test_one_refused_cell_or_time_refuses_the_whole_update(session: AsyncSession) -> None:
    (user,) = await add_users(session, 1)
    service = PreferenceService(session)
    with pytest.raises(ValidationFailed) as refused:
        await service.update(
            user,
            channels={"event_updated": {"email": False}, "event_cancelled": {"email": False}, "nope": {}},
            quiet_hours=("22:00", "22:00"),
        )
    assert set(refused.value.fields) == {"channels.event_cancelled.email", "channels.nope", "quiet_hours.end"}
    assert "always email you" in refused.value.fields["channels.event_cancelled.email"]
    assert await stored_cells(session, user) == 0 and await service.quiet_hours(user) is None


async def test_quiet_hours_are_set_replaced_kept_and_cleared(session: AsyncSession) -> None:
    (user,) = await add_users(session, 1)
    service = PreferenceService(session)
    assert await service.set_quiet_hours(user, "22:00", "07:00") == (time(22), time(7))
    await service.set_quiet_hours(user, "23:15", "06:30")
    await service.update(user, channels={}, quiet_hours=Keep.KEEP)
    assert await service.quiet_hours(user) == (time(23, 15), time(6, 30))
    await service.update(user, quiet_hours=None)
    assert await service.quiet_hours(user) is None
    with pytest.raises(ValidationFailed) as refused:
        await service.set_quiet_hours(user, "7", "24:00")
    assert set(refused.value.fields) == {"quiet_hours.start", "quiet_hours.end"}


async def test_muting_needs_an_event_and_is_per_user(session: AsyncSession) -> None:
    alice, bob = await add_users(session, 2)
    concert = await insert_event(session, alice, starts_in=timedelta(days=2), title="Harbour Lights")
    service = PreferenceService(session)
    with pytest.raises(NotFound):
        await service.mute_event(alice, concert.id + 1000)
    with pytest.raises(NotFound):
        await service.unmute_event(alice, concert.id + 1000)
    await service.mute_event(alice, concert.id)
    await service.mute_event(alice, concert.id)
    assert await service.is_muted(alice, concert.id) and not await service.is_muted(bob, concert.id)
    assert [m.title for m in await service.muted_events(alice)] == ["Harbour Lights"]
    await service.unmute_event(bob, concert.id)
    assert await service.is_muted(alice, concert.id)
    await service.unmute_event(alice, concert.id)
    assert await service.muted_events(alice) == []


async def test_unsubscribing_from_the_digest_spares_the_locked_types(session: AsyncSession) -> None:
    (user,) = await add_users(session, 1)
    service = PreferenceService(session)
    done = await service.unsubscribe(user, "digest")
    assert sorted(done.kept) == sorted(LOCKED_CHANNELS)
    grid = await service.grid(user)
    assert {t for t, row in grid.items() if row["email"]} == set(LOCKED_CHANNELS)
    with pytest.raises(NotFound):
        await service.unsubscribe(user, "party_invite")
    with pytest.raises(NotFound):
        await service.unsubscribe(user + 1000, "event_updated")
