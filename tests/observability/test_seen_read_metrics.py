"""tidings_notifications_seen_total and tidings_notifications_read_total count the rows that
really changed, once their transaction has committed: marking again, or a rollback, adds nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tests.crowd import UNUSABLE_PASSWORD_HASH
from webapp import metrics
from webapp.auth.models import User
from webapp.notifications.services import NewNotification, NotificationService


def counted() -> tuple[float, float]:
    def value(name: str) -> float:
        return metrics.REGISTRY.get_sample_value(name) or 0.0

    return value("tidings_notifications_seen_total"), value("tidings_notifications_read_total")


class Moved:
    def __init__(self) -> None:
        self.before = counted()

    def __call__(self) -> tuple[float, float]:
        now = counted()
        return now[0] - self.before[0], now[1] - self.before[1]


async def inbox_of_five(session: AsyncSession) -> tuple[int, list[Any]]:
    user = User(email="counted@example.com", name="Counted", password_hash=UNUSABLE_PASSWORD_HASH)
    session.add(user)
    await session.flush()
    created = await NotificationService(session).notify_many(
        [NewNotification(user_id=user.id, type="general", title=f"n{i}") for i in range(5)]
    )
    await session.commit()
    return user.id, created


async def test_seen_and_read_counters_move_by_the_rows_changed_after_commit(session: AsyncSession) -> None:
    user_id, created = await inbox_of_five(session)
    service = NotificationService(session)
    moved = Moved()

    await service.mark_seen(user_id, up_to_seq=created[2].seq)  # the dropdown showed three
    assert moved() == (0, 0), "nothing is counted before the commit"
    await session.commit()
    assert moved() == (3, 0)
    await service.mark_seen(user_id, up_to_seq=created[2].seq)  # shown again: nothing new seen
    await session.commit()
    assert moved() == (3, 0)

    await service.mark_read(user_id, created[0].id)
    await service.mark_read(user_id, created[0].id)  # already read: no change
    await session.commit()
    assert moved() == (3, 1)

    await service.mark_all_read(user_id)  # the four others
    await session.rollback()  # ... undone: not counted
    assert moved() == (3, 1)
    ids, _ = await service.mark_all_read(user_id)
    await session.commit()
    assert len(ids) == 4
    assert moved() == (3, 5)

    await service.mark_unread(user_id, created[1].id)
    await session.commit()
    assert moved() == (3, 5), "marking unread is not a read"
