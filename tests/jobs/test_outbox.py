"""The transactional outbox: work is enqueued only after commit, and never lost between the two."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.api import eventually, register
from webapp.db import utcnow
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService
from webapp.outbox.models import OutboxMessage
from webapp.outbox.services import (
    enqueue_after_commit,
    hand_overs_finished,
    purge_completed,
    redeliver_unfinished,
    set_dispatcher,
)
from webapp.realtime.doorbell import LocalDoorbell, current_doorbell, set_doorbell


@pytest.fixture
def sent():
    """Records what the outbox hands to the queue (the real dispatcher is restored afterwards)."""
    import jobs.dispatch

    calls: list[tuple[str, dict]] = []
    set_dispatcher(lambda name, kwargs: calls.append((name, kwargs)))
    yield calls
    set_dispatcher(jobs.dispatch.send_by_name)


class Boom(Exception):
    pass


async def test_a_service_failing_after_writing_outbox_and_notifications_leaves_nothing(client, session, sent):
    user, _ = await register(client)
    previous = current_doorbell()
    doorbell = LocalDoorbell()
    set_doorbell(doorbell)
    subscription = doorbell.hub.subscribe(user["id"], 10)
    try:
        with pytest.raises(Boom):
            await NotificationService(session).notify(NewNotification(user_id=user["id"], type="general", title="x"))
            enqueue_after_commit(session, "send_booking_confirmation", booking_id=1)
            await session.flush()
            raise Boom  # the service fails after writing both
    finally:
        await session.rollback()
        set_doorbell(previous)
    assert sent == []
    assert await subscription.next(0.1) is None
    assert await session.scalar(select(func.count(Notification.id))) == 0
    assert await session.scalar(select(func.count(OutboxMessage.id))) == 0
    await session.rollback()


async def test_committed_rows_are_enqueued_at_once_and_marked(session, sent, engine):
    row = enqueue_after_commit(session, "send_group_invitation", invitation_id=7)
    await session.commit()

    async def handed_over():
        return sent

    # At once, but off the event loop: the hand-over runs on a sender thread after the commit.
    assert await eventually(handed_over, within=5) == [
        ("send_group_invitation", {"invitation_id": 7, "outbox_id": row.id})
    ]

    async def marked():
        async with engine.connect() as conn:
            return await conn.scalar(select(OutboxMessage.enqueued_at).where(OutboxMessage.id == row.id))

    assert await eventually(marked)


def redeliver(session, now, max_attempts: int = 5):
    return redeliver_unfinished(
        session,
        now,
        never_sent_after=timedelta(seconds=30),
        resend_after=timedelta(seconds=40),
        max_attempts=max_attempts,
    )


async def handed_over(engine, row_id: int, attempts: int):
    async def check():
        async with engine.connect() as conn:
            row = (await conn.execute(select(OutboxMessage).where(OutboxMessage.id == row_id))).one()
        return row if row.attempts == attempts and row.enqueued_at is not None else None

    return await eventually(check)


async def test_rows_stranded_by_a_crash_are_handed_over_again_by_the_scheduler(session, sent, engine):
    # A crash between commit and enqueue: the row is committed but was never handed over.
    stranded = OutboxMessage(actor_name="send_payment_failed", payload={"payment_id": 3})
    session.add(stranded)
    await session.commit()
    assert sent == []
    now = utcnow()
    assert await redeliver(session, now) == 0  # younger than the grace period: maybe still on its way
    await session.commit()
    assert await redeliver(session, now + timedelta(seconds=31)) == 1
    assert sent == []  # handed over only once the scheduler's transaction commits
    await session.commit()
    await hand_overs_finished()  # the hand-over runs off the event loop, after the commit
    assert sent == [("send_payment_failed", {"payment_id": 3, "outbox_id": stranded.id})]
    await handed_over(engine, stranded.id, attempts=1)
    assert await redeliver(session, utcnow() + timedelta(seconds=39)) == 0  # handed over, not yet overdue
    await session.commit()
    assert len(sent) == 1


async def test_a_row_whose_job_never_completes_is_handed_over_again_then_given_up(session, sent, engine, caplog):
    # Handed over, but the queue lost it (a restart of an in-memory or non-persistent queue).
    row = enqueue_after_commit(session, "send_group_invitation", invitation_id=9)
    await session.commit()
    await handed_over(engine, row.id, attempts=1)
    # Handed over again 40 s after the first hand-over, then after twice as long each time
    # (hand-overs are stamped with the real time; the margin covers the wait for the stamp).
    for attempt, wait in ((2, 40), (3, 80)):
        stamped = utcnow()
        assert await redeliver(session, stamped + timedelta(seconds=wait - 5), max_attempts=3) == 0
        await session.commit()
        assert await redeliver(session, stamped + timedelta(seconds=wait + 1), max_attempts=3) == 1
        await session.commit()
        await handed_over(engine, row.id, attempts=attempt)
    stamped = utcnow()
    assert await redeliver(session, stamped + timedelta(seconds=155), max_attempts=3) == 0
    await session.commit()
    assert (await session.get(OutboxMessage, row.id, populate_existing=True)).failed_at is None
    later = stamped + timedelta(seconds=161)
    assert await redeliver(session, later, max_attempts=3) == 0  # three hand-overs, never completed: failed
    await session.commit()
    assert [name for name, _ in sent] == ["send_group_invitation"] * 3
    failed = await session.get(OutboxMessage, row.id, populate_existing=True)
    assert failed.failed_at is not None and failed.completed_at is None
    assert any("gave up" in r.getMessage() for r in caplog.records if r.name == "tidings.outbox")
    assert await redeliver(session, later + timedelta(days=1), max_attempts=3) == 0
    await session.rollback()


async def test_a_completed_row_is_never_handed_over_again_and_is_purged_after_the_retention(session, sent, engine):
    done = enqueue_after_commit(session, "send_group_invitation", invitation_id=1)
    failed = enqueue_after_commit(session, "send_group_invitation", invitation_id=2)
    await session.commit()
    await handed_over(engine, done.id, attempts=1)
    done.completed_at = utcnow() - timedelta(days=8)
    failed.failed_at = utcnow() - timedelta(days=8)
    await session.commit()
    assert await redeliver(session, utcnow() + timedelta(hours=1)) == 0
    assert await purge_completed(session, utcnow() - timedelta(days=7)) == 1
    await session.commit()
    remaining = list(await session.scalars(select(OutboxMessage.id)))
    assert remaining == [failed.id]  # a failed row stays for inspection
    await session.rollback()


async def test_a_job_completes_its_row_in_its_own_transaction(session, sent, settings, engine):
    from jobs import runtime

    runtime.configure(settings)
    rows = [enqueue_after_commit(session, "send_group_invitation", invitation_id=i) for i in range(3)]
    await session.commit()
    ids = [row.id for row in rows]
    for row_id in ids:
        await handed_over(engine, row_id, attempts=1)

    async def state(row_id: int):
        completed = await session.scalar(select(OutboxMessage.completed_at).where(OutboxMessage.id == row_id))
        notes = await session.scalar(select(func.count(Notification.id)).where(Notification.title == f"job {row_id}"))
        await session.rollback()
        return completed is not None, notes

    from webapp.auth.models import User

    owner = User(email="outbox-owner@example.com", name="Owner", password_hash="!", timezone="UTC")
    session.add(owner)
    await session.commit()
    owner_id = owner.id
    try:
        # A job that commits its effect: the row is completed by that same commit.
        async with runtime.session(ids[0]) as db:
            await NotificationService(db).notify(
                NewNotification(user_id=owner_id, type="general", title=f"job {ids[0]}")
            )
            await db.commit()
        assert await state(ids[0]) == (True, 1)
        # A job that fails: neither its effect nor the completion is kept.
        with pytest.raises(Boom):
            async with runtime.session(ids[1]) as db:
                await NotificationService(db).notify(
                    NewNotification(user_id=owner_id, type="general", title=f"job {ids[1]}")
                )
                await db.flush()
                raise Boom
        assert await state(ids[1]) == (False, 0)
        # A job with nothing to do (its subject is gone): it ran, so the row is completed.
        async with runtime.session(ids[2]):
            pass
        assert await state(ids[2]) == (True, 0)
    finally:
        await runtime.dispose()
