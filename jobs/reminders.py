"""Event reminders: the scheduler claims due rows; this actor re-checks and sends each once."""

from __future__ import annotations

import dramatiq

from jobs import runtime
from jobs.broker import broker as _broker  # noqa: F401 - configures Dramatiq before the actors below
from webapp.db import utcnow
from webapp.reminders.services import ReminderService


@dramatiq.actor(queue_name="notifications")
async def send_event_reminder(reminder_id: int, outbox_id: int | None = None) -> None:
    async with runtime.session(outbox_id) as session:
        await ReminderService(session).send(reminder_id, utcnow())
        await session.commit()
