"""Announcements of one sender to one event are numbered in each inbox in the order they were
sent, whatever order (or however at once) their fan-out jobs run.

The outbox hands nothing to a queue here: the test captures the messages and runs the actors
itself, in the order the case needs. On PostgreSQL the jobs run at once really interleave; the
live version with real worker processes is test_announcement_order_live.py.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

import jobs.dispatch
from jobs.fanout import fan_out_announcement, notify_announcement
from tests.jobs.test_event_change_order import event_with_attendee, user
from webapp.auth.models import User
from webapp.bookings.services import BookingService
from webapp.notifications.announcements import AnnouncementService
from webapp.notifications.models import Notification
from webapp.outbox.services import hand_overs_finished, set_dispatcher
from webapp.ratelimit import MemoryCounter, RateLimiter

run_root = inspect.unwrap(fan_out_announcement.fn)
run_chunk = inspect.unwrap(notify_announcement.fn)


@pytest.fixture
def queued() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """The fan-out messages the outbox would have queued, by actor, in commit order."""
    captured: dict[str, list[dict[str, Any]]] = {}

    def record(name: str, kwargs: dict[str, Any]) -> None:
        captured.setdefault(name, []).append({k: v for k, v in kwargs.items() if k != "outbox_id"})

    set_dispatcher(record)
    yield captured
    set_dispatcher(jobs.dispatch.send_by_name)


async def announce(maker: Any, sender_id: int, event_id: int, title: str) -> None:
    async with maker() as session:
        service = AnnouncementService(session, RateLimiter(MemoryCounter(), 100, 3600))
        await service.announce(await session.get(User, sender_id), title, f"{title} body", event_id)
        await session.commit()
    await hand_overs_finished()


async def run_roots(queued: dict[str, list[dict[str, Any]]], order: list[int]) -> list[dict[str, Any]]:
    """Runs the announcements' root jobs in this order; returns the chunks they queued, in it."""
    roots = queued.pop("fan_out_announcement")
    for i in order:
        await run_root(**roots[i])
    await hand_overs_finished()
    return queued.pop("notify_announcement")


async def titles_by_seq(maker: Any, user_id: int, event_id: int) -> list[str]:
    async with maker() as session:
        return list(
            await session.scalars(
                select(Notification.title)
                .where(Notification.user_id == user_id, Notification.subject_id == event_id)
                .where(Notification.type == "general")
                .order_by(Notification.seq)
            )
        )


async def test_a_later_announcement_whose_job_runs_first_is_numbered_after_the_earlier_ones(
    maker, queued, jobs_runtime
):
    organizer, event_id, attendee = await event_with_attendee(maker, "order-late")
    sent = ["First", "Second", "Third"]
    for title in sent:
        await announce(maker, organizer, event_id, title)

    chunks = await run_roots(queued, [2, 1, 0])  # the fan-outs run newest first
    for chunk in chunks + chunks:  # and every chunk is delivered twice
        await run_chunk(**chunk)

    assert await titles_by_seq(maker, attendee, event_id) == sent
    async with maker() as session:  # each counts under its own delivery report
        reports = {
            title: report_id
            for title, report_id in await session.execute(
                select(Notification.title, Notification.report_id).where(Notification.user_id == attendee)
            )
        }
    assert len(set(reports.values())) == 3 and all(reports.values())
    assert [c["title"] for c in chunks] == ["Third", "Second", "First"]


async def test_announcement_jobs_running_at_once_leave_every_inbox_in_send_order(maker, queued, jobs_runtime):
    organizer, event_id, first = await event_with_attendee(maker, "order-together")
    second = await user(maker, "order-together-second@example.com")
    async with maker() as session:
        await BookingService(session).book(await session.get(User, second), event_id, 1)
        await session.commit()
    sent = [f"News {i}" for i in range(5)]
    for title in sent:
        await announce(maker, organizer, event_id, title)
    chunks = await run_roots(queued, [4, 3, 2, 1, 0])
    await asyncio.gather(*(run_chunk(**chunk) for chunk in chunks))
    assert await titles_by_seq(maker, first, event_id) == sent
    assert await titles_by_seq(maker, second, event_id) == sent


async def test_someone_who_books_after_an_announcement_gets_neither_it_nor_it_through_a_later_one(
    maker, queued, jobs_runtime
):
    organizer, event_id, early = await event_with_attendee(maker, "order-newcomer")
    await announce(maker, organizer, event_id, "Before you came")
    newcomer = await user(maker, "order-newcomer-late@example.com")
    async with maker() as session:
        await BookingService(session).book(await session.get(User, newcomer), event_id, 1)
        await session.commit()
    await announce(maker, organizer, event_id, "Welcome all")

    chunks = await run_roots(queued, [1, 0])
    for chunk in chunks:
        await run_chunk(**chunk)

    assert await titles_by_seq(maker, early, event_id) == ["Before you came", "Welcome all"]
    assert await titles_by_seq(maker, newcomer, event_id) == ["Welcome all"]
