"""Delivery reports stay true however the fan-out jobs run: twice, duplicated, out of order.

The outbox hands nothing to a queue here: every message is captured and the test runs the actors
itself (their coroutines, in this test's loop), in the order the case needs. Counts are read
through the same service the API uses.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from jobs import runtime
from jobs.fanout import fan_out_announcement, fan_out_event_change, notify_announcement, notify_event_change
from tests.crowd import UNUSABLE_PASSWORD_HASH
from tests.jobs.test_event_change_order import edit
from webapp.auth.models import User
from webapp.bookings.services import BookingService
from webapp.db import create_sessionmaker, utcnow
from webapp.events.services import EventDetails, EventService
from webapp.notifications.announcements import AnnouncementService
from webapp.notifications.delivery_reports import DeliveryCounts, DeliveryReports
from webapp.notifications.models import Notification
from webapp.outbox.services import hand_overs_finished
from webapp.ratelimit import MemoryCounter, RateLimiter

ACTORS = {
    actor.actor_name: inspect.unwrap(actor.fn)  # the coroutine, run in this test's loop
    for actor in (fan_out_announcement, notify_announcement, fan_out_event_change, notify_event_change)
}


@pytest.fixture
async def maker(engine: Any, settings: Any) -> AsyncIterator[Any]:
    runtime.configure(settings)
    yield create_sessionmaker(engine)
    await runtime.dispose()


async def run(message: tuple[str, dict[str, Any]]) -> None:
    name, kwargs = message
    await ACTORS[name](**kwargs)
    await hand_overs_finished()  # what it queued is captured before the next step


def of(sent: list[tuple[str, dict[str, Any]]], actor: str) -> list[tuple[str, dict[str, Any]]]:
    return [m for m in sent if m[0] == actor]


async def person(maker: Any, email: str, role: str = "member") -> int:
    async with maker() as session:
        user = User(email=email, name=email.split("@")[0], password_hash=UNUSABLE_PASSWORD_HASH, role=role)
        session.add(user)
        await session.commit()
        return user.id


async def event_with_attendees(maker: Any, tag: str, count: int) -> tuple[int, int, list[int]]:
    organizer = await person(maker, f"{tag}-organizer@example.com")
    attendees = [await person(maker, f"{tag}-{i}@example.com") for i in range(count)]
    start = utcnow().replace(microsecond=0) + timedelta(days=7)
    details = EventDetails("Quiz Night", "", "Old Hall", start, start + timedelta(hours=2), "UTC", 50, 0, "EUR")
    async with maker() as session:
        event_id = (await EventService(session).create(await session.get(User, organizer), details)).id
        await session.commit()
    for attendee in attendees:
        async with maker() as session:
            await BookingService(session).book(await session.get(User, attendee), event_id, 1)
            await session.commit()
    return organizer, event_id, attendees


async def reports(maker: Any, viewer: int, event_id: int) -> list[DeliveryCounts]:
    async with maker() as session:
        found, _ = await DeliveryReports(session).for_event(await session.get(User, viewer), event_id, limit=100)
        await session.rollback()
        return found


async def numbers(maker: Any, viewer: int, report_id: int) -> tuple[int | None, int, int, int, int]:
    """(recipients, notified, read, replaced, unseen) of one report."""
    async with maker() as session:
        r = await DeliveryReports(session).get(await session.get(User, viewer), report_id)
        await session.rollback()
    return r.recipients, r.notified, r.read, r.replaced, r.unseen


async def test_an_announcement_whose_jobs_run_twice_counts_each_recipient_once(maker, sent) -> None:
    admin = await person(maker, "admin@example.com", role="admin")
    for i in range(5):
        await person(maker, f"member-{i}@example.com")
    async with maker() as session:
        service = AnnouncementService(session, RateLimiter(MemoryCounter(), 100, 3600))
        announced = await service.announce(await session.get(User, admin), "Maintenance at noon", "")
        await session.commit()
    await hand_overs_finished()
    [root] = of(sent, "fan_out_announcement")
    assert root[1]["report_id"] == announced.report_id

    await run(root)
    await run(root)  # delivered twice: plans again, queues its chunk again
    chunks = of(sent, "notify_announcement")
    assert len(chunks) == 2 and all(c[1]["report_id"] == announced.report_id for c in chunks)
    for chunk in chunks + chunks[:1]:
        await run(chunk)
    assert await numbers(maker, admin, announced.report_id) == (6, 6, 0, 0, 6)

    async with maker() as session:
        rows = list(await session.scalars(select(Notification.report_id).where(Notification.type == "general")))
    assert rows == [announced.report_id] * 6


async def test_update_jobs_out_of_order_count_a_merged_item_under_the_newest_version_it_tells(maker, sent) -> None:
    organizer, event_id, attendees = await event_with_attendees(maker, "late", 2)
    await edit(maker, organizer, event_id, venue="New Hall")  # version 2
    await edit(maker, organizer, event_id, title="Quiz Finals")  # version 3
    v2, v3 = of(sent, "fan_out_event_change")
    newest, older = await reports(maker, organizer, event_id)
    assert (v2[1]["report_id"], v3[1]["report_id"]) == (older.id, newest.id)
    assert (older.kind, newest.kind) == ("event_updated", "event_updated")

    await run(v3)
    await run(v2)
    chunk_v3, chunk_v2 = of(sent, "notify_event_change")
    await run(chunk_v3)  # tells versions 2 and 3 in one item
    await run(chunk_v2)  # nothing left to tell
    await run(chunk_v3)  # again: adds nothing
    assert await numbers(maker, organizer, newest.id) == (2, 2, 0, 0, 2)
    recipients, notified, _, replaced, _ = await numbers(maker, organizer, older.id)
    assert (recipients, notified, replaced) == (2, 0, 0)
    async with maker() as session:
        told = list(await session.scalars(select(Notification).where(Notification.type == "event_updated")))
    assert {(n.report_id, tuple(n.data["versions"])) for n in told} == {(newest.id, (2, 3))}


async def test_in_order_updates_count_replaced_items_under_their_own_report_and_repeats_change_nothing(
    maker, sent
) -> None:
    organizer, event_id, attendees = await event_with_attendees(maker, "ordered", 3)
    await edit(maker, organizer, event_id, venue="New Hall")
    [v2] = of(sent, "fan_out_event_change")
    await run(v2)
    [chunk_v2] = of(sent, "notify_event_change")
    await run(chunk_v2)
    await edit(maker, organizer, event_id, title="Quiz Finals")
    _, v3 = of(sent, "fan_out_event_change")
    await run(v3)
    _, chunk_v3 = of(sent, "notify_event_change")
    await run(chunk_v3)
    newest, older = await reports(maker, organizer, event_id)
    expected = {older.id: (3, 3, 0, 3, 0), newest.id: (3, 3, 0, 0, 3)}
    assert {r: await numbers(maker, organizer, r) for r in expected} == expected

    for message in [v2, v3, chunk_v3, chunk_v2, chunk_v3]:  # redelivered, late, twice
        await run(message)
    assert {r: await numbers(maker, organizer, r) for r in expected} == expected
