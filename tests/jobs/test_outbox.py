"""The transactional outbox: work is enqueued only after commit, and never lost between the two."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.api import eventually, register
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService
from webapp.outbox.models import OutboxMessage
from webapp.outbox.services import enqueue_after_commit, enqueue_stranded, set_dispatcher
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


async def test_rows_stranded_by_a_crash_are_enqueued_by_the_scheduler(session, sent):
    # A crash between commit and enqueue: the row is committed but was never handed over.
    stranded = OutboxMessage(actor_name="send_payment_failed", payload={"payment_id": 3})
    session.add(stranded)
    await session.commit()
    assert sent == []
    assert await enqueue_stranded(session, older_than=timedelta(0)) == 1
    assert sent == [("send_payment_failed", {"payment_id": 3, "outbox_id": stranded.id})]
    assert await enqueue_stranded(session, older_than=timedelta(0)) == 0  # not twice
    row = await session.get(OutboxMessage, stranded.id, populate_existing=True)
    assert row.enqueued_at is not None and row.attempts == 1
    await session.rollback()
