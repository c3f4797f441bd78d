"""Property: whatever sequence of operations runs, the unread count the service reports equals
the number of unread, unexpired notifications, and seqs stay gap-free."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from webapp.auth.models import User
from webapp.db import create_engine, create_sessionmaker, utcnow
from webapp.notifications.models import Notification, NotificationCounter
from webapp.notifications.services import NewNotification, NotificationService

operation = st.one_of(
    st.tuples(st.just("notify"), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("read"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("unread"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("read_all"), st.integers(0, 30), st.booleans()),
)


async def run_operations(database_url: str, operations: list[tuple[str, int, bool]]) -> None:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            user = User(email="prop@example.com", name="Prop", password_hash="x", timezone="UTC")
            session.add(user)
            await session.commit()
            service = NotificationService(session)
            model: dict[int, bool] = {}  # id -> unread
            expired: set[int] = set()
            for kind, number, flag in operations:
                if kind == "notify":
                    items = [
                        NewNotification(
                            user_id=user.id,
                            type="general",
                            title="p",
                            expires_at=utcnow() - timedelta(seconds=1) if flag and i == 0 else None,
                        )
                        for i in range(number)
                    ]
                    for created in await service.notify_many(items):
                        model[created.id] = True
                        if created.expires_at is not None:
                            expired.add(created.id)
                    await session.commit()
                elif kind in ("read", "unread") and model:
                    target = sorted(model)[number % len(model)]
                    await (service.mark_read if kind == "read" else service.mark_unread)(user.id, target)
                    model[target] = kind == "unread"
                elif kind == "read_all":
                    up_to = number if flag else None
                    ids, _ = await service.mark_all_read(user.id, up_to)
                    for notification_id in ids:
                        model[notification_id] = False
                expected = sum(1 for nid, unread in model.items() if unread and nid not in expired)
                state = await service.state(user.id)
                assert state.unread_count == expected
                assert state.seq == len(model)
            seqs = list(
                await session.scalars(
                    select(Notification.seq).where(Notification.user_id == user.id).order_by(Notification.seq)
                )
            )
            assert seqs == list(range(1, len(model) + 1))
            db_unread = await session.scalar(
                select(func.count()).where(Notification.user_id == user.id, Notification.read_at.is_(None))
            )
            assert db_unread == sum(model.values())
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(Notification))
            await conn.execute(delete(NotificationCounter))
            await conn.execute(delete(User).where(User.email == "prop@example.com"))
        await engine.dispose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=25))
def test_unread_counts_never_drift(database_url, operations):
    # Each example gets its own event loop and engine: hypothesis drives a plain function.
    asyncio.run(run_operations(database_url, operations))
