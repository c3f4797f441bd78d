"""Opening delivery reports and recording what their fan-outs planned.

A report is opened in the transaction that records its fact (the announcement request, the event
edit, the cancellation) and its id travels in the fan-out's outbox payload. Its key makes it one
report per fact: opening the same key again answers the report already there.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import insert_on_conflict
from webapp.deliveries.models import TITLE_MAX, DeliveryReport, ReportKind


def announcement_key(token: str) -> str:
    return f"announcement:{token}"


def event_change_key(kind: ReportKind, event_id: int, version: int) -> str:
    """The report of one version of an event: `event_updated` or `event_cancelled`."""
    return f"{kind}:{event_id}:{version}"


class DeliveryReportService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open(
        self,
        *,
        key: str,
        kind: ReportKind,
        title: str,
        event_id: int | None = None,
        sender_id: int | None = None,
        body: str | None = None,
    ) -> int:
        """The id of the report with this key, written now unless it exists."""
        make_insert = insert_on_conflict(self.session)
        await self.session.execute(
            make_insert(DeliveryReport)
            .values(
                key=key,
                kind=kind,
                title=title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…",
                event_id=event_id,
                sender_id=sender_id,
                body=body,
            )
            .on_conflict_do_nothing(index_elements=["key"])
        )
        return int(await self.session.scalar(select(DeliveryReport.id).where(DeliveryReport.key == key)) or 0)

    async def ids(self, keys: Sequence[str]) -> dict[str, int]:
        """The reports that exist among these keys (one query on the key's unique index)."""
        if not keys:
            return {}
        rows = await self.session.execute(
            select(DeliveryReport.key, DeliveryReport.id).where(DeliveryReport.key.in_(keys))
        )
        return {key: report_id for key, report_id in rows}

    async def plan(self, report_id: int, recipients: int) -> None:
        """The fan-out counted its recipients. A fan-out run again (redelivered) may plan again:
        the larger plan stays, so running it twice with the same people changes nothing."""
        await self.session.execute(
            update(DeliveryReport)
            .where(
                DeliveryReport.id == report_id,
                or_(DeliveryReport.recipients.is_(None), DeliveryReport.recipients < recipients),
            )
            .values(recipients=recipients)
        )
