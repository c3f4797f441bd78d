"""NotificationService: per-user gap-free seqs, dedupe, read state, counts, listing, doorbell."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from webapp.db import create_sessionmaker, utcnow
from webapp.errors import NotFound, ValidationFailed
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService


def note(user_id: int, title: str = "Hello", **extra) -> NewNotification:
    return NewNotification(user_id=user_id, type="general", title=title, **extra)


async def test_seqs_are_gap_free_and_per_user(session, users):
    a, b = users
    service = NotificationService(session)
    created = await service.notify_many([note(a), note(b), note(a), note(a), note(b)])
    await session.commit()
    assert [(n.user_id, n.seq) for n in created] == [(a, 1), (b, 1), (a, 2), (a, 3), (b, 2)]
    state = await service.state(a)
    assert (state.seq, state.unread_count) == (3, 3)


async def test_concurrent_creators_never_share_or_skip_a_seq(engine, users):
    a, _ = users
    sessionmaker = create_sessionmaker(engine)

    async def create(n: int) -> None:
        async with sessionmaker() as session:
            await NotificationService(session).notify_many([note(a, f"n{n}-{i}") for i in range(3)])
            await session.commit()

    await asyncio.gather(*(create(n) for n in range(20)))
    async with sessionmaker() as session:
        seqs = list(
            await session.scalars(select(Notification.seq).where(Notification.user_id == a).order_by(Notification.seq))
        )
    assert seqs == list(range(1, 61))


async def test_a_dedupe_key_already_used_is_skipped_without_consuming_a_seq(session, users):
    a, b = users
    service = NotificationService(session)
    first = await service.notify(note(a, dedupe_key="event_updated:1:2"))
    again = await service.notify(note(a, dedupe_key="event_updated:1:2"))
    in_batch = await service.notify_many([note(a, dedupe_key="k"), note(a, dedupe_key="k")])
    other_user = await service.notify(note(b, dedupe_key="event_updated:1:2"))
    await session.commit()
    assert first is not None and first.seq == 1
    assert again is None
    assert [n.seq for n in in_batch] == [2]
    assert other_user is not None and other_user.seq == 1
    assert (await service.state(a)).seq == 2


async def test_invalid_notifications_are_refused(session, users):
    a, _ = users
    service = NotificationService(session)
    with pytest.raises(ValidationFailed):
        await service.notify(NewNotification(user_id=a, type="gossip", title="x"))
    with pytest.raises(ValidationFailed):
        await service.notify(NewNotification(user_id=a, type="general", title="  "))


async def test_mark_all_read_leaves_what_arrived_after_the_click_unread(session, users):
    a, _ = users
    service = NotificationService(session)
    await service.notify_many([note(a), note(a)])
    await session.commit()
    seen_up_to = (await service.state(a)).seq  # what the page showed when the user clicked
    await service.notify(note(a, "arrived during the click"))
    await session.commit()
    ids, state = await service.mark_all_read(a, up_to_seq=seen_up_to)
    assert len(ids) == 2
    assert state.unread_count == 1
    unread, _ = await service.listing(a, status="unread")
    assert [n.title for n in unread] == ["arrived during the click"]


async def test_read_unread_and_another_users_notification(session, users):
    a, b = users
    service = NotificationService(session)
    mine = await service.notify(note(a))
    await session.commit()
    notification, state = await service.mark_read(a, mine.id)
    assert notification.read_at is not None and state.unread_count == 0
    _, again = await service.mark_read(a, mine.id)  # idempotent: no new version
    assert again.version == state.version
    notification, state = await service.mark_unread(a, mine.id)
    assert notification.read_at is None and state.unread_count == 1
    with pytest.raises(NotFound):
        await service.mark_read(b, mine.id)
    with pytest.raises(NotFound):
        await service.mark_read(a, 999999)
    assert (await service.unread_count(a)) == 1


async def test_expired_notifications_leave_the_unread_count(session, users):
    a, _ = users
    service = NotificationService(session)
    await service.notify_many([note(a, "old", expires_at=utcnow() - timedelta(minutes=1)), note(a, "fresh")])
    await session.commit()
    assert await service.unread_count(a) == 1
    unread, _ = await service.listing(a, status="unread")
    assert [n.title for n in unread] == ["fresh"]


async def test_listing_filters_and_cursor_pagination(session, users):
    a, _ = users
    service = NotificationService(session)
    await service.notify_many(
        [NewNotification(user_id=a, type="general" if i % 2 else "event_reminder", title=f"n{i}") for i in range(1, 8)]
    )
    await session.commit()
    page, cursor = await service.listing(a, limit=3)
    assert [n.seq for n in page] == [7, 6, 5] and cursor == 5
    page, cursor = await service.listing(a, limit=3, cursor=cursor)
    assert [n.seq for n in page] == [4, 3, 2] and cursor == 2
    page, cursor = await service.listing(a, limit=3, cursor=cursor)
    assert [n.seq for n in page] == [1] and cursor is None
    reminders, _ = await service.listing(a, type_="event_reminder")
    assert {n.type for n in reminders} == {"event_reminder"} and len(reminders) == 3
    for bad in ({"status": "maybe"}, {"type_": "gossip"}, {"limit": 0}, {"limit": 101}, {"cursor": -1}):
        with pytest.raises(ValidationFailed):
            await service.listing(a, **bad)


async def test_the_doorbell_rings_after_commit_and_never_for_a_rollback(session, users, doorbell):
    a, _ = users
    subscription = doorbell.hub.subscribe(a, maxsize=10)
    service = NotificationService(session)
    await service.notify(note(a, "rolled back"))
    assert await subscription.next(0.05) is None  # not before commit
    await session.rollback()
    assert await subscription.next(0.05) is None
    assert (await service.state(a)).seq == 0  # nothing stayed
    created = await service.notify(note(a, "committed"))
    await session.commit()
    message = await subscription.next(1)
    assert message["type"] == "new" and message["seq"] == created.seq == 1
    assert message["notification"]["title"] == "committed" and message["unread_count"] == 1
    await service.mark_read(a, created.id)
    assert await subscription.next(0.05) is None  # not before commit
    await session.commit()
    read = await subscription.next(1)
    assert read["type"] == "read" and read["ids"] == [created.id] and read["unread_count"] == 0
    assert read["version"] > message["version"]
    subscription.close()


async def test_a_subscriber_that_falls_behind_is_closed_not_buffered(users, doorbell):
    a, _ = users
    subscription = doorbell.hub.subscribe(a, maxsize=3)
    doorbell.ring([{"type": "new", "user": a, "seq": i} for i in range(1, 10)])
    assert subscription.overflowed
    assert (await subscription.next(0.1))["type"] == "close"
    subscription.close()
    assert doorbell.hub.count(a) == 0


async def test_broadcast_to_user_and_broadcast_notification_count_ring_the_doorbell(session, users, doorbell):
    a, _ = users
    created = await NotificationService(session).notify(note(a, "again"))
    await session.commit()
    subscription = doorbell.hub.subscribe(a, maxsize=10)
    service = NotificationService(session)
    await service.broadcast_to_user(a, created)
    again = await subscription.next(1)
    assert (again["type"], again["seq"], again["notification"]["title"], again["unread_count"]) == (
        "new",
        1,
        "again",
        1,
    )
    state = await service.broadcast_notification_count(a)
    count = await subscription.next(1)
    assert (count["type"], count["unread_count"], count["seq"], count["version"]) == ("count", 1, 1, state.version)
    subscription.close()


async def test_a_job_for_an_account_deleted_meanwhile_skips_it_instead_of_failing(session, users):
    """A fan-out queued before an account was deleted must not fail (and retry for hours) on it."""
    a, gone = users
    from webapp.auth.models import User

    await session.delete(await session.get(User, gone))
    await session.commit()
    created = await NotificationService(session).notify_many(
        [note(a, "still here", actor_id=gone), note(gone, "to nobody")]
    )
    await session.commit()
    assert [(n.user_id, n.title) for n in created] == [(a, "still here")]
    assert await session.scalar(select(Notification.actor_id).where(Notification.user_id == a)) is None
    await session.rollback()
