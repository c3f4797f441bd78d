"""The periodic check that makes a lost doorbell ring cost seconds, not the rest of a stream.

A ring can be lost: a worker killed between commit and publish, a publish while Redis was down, a
web process that cannot reach Redis at all. Every `STREAM_RESYNC_SECONDS` each process reads the
inbox position (last seq, version) of the users it has open streams for, in one query for all of
them, and tells the streams that have not heard of that position to re-read the database. A
stream that is up to date costs nothing but its row in that query.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.notifications.models import NotificationCounter
from webapp.notifications.services import IN_CHUNK
from webapp.realtime.doorbell import RESYNC, Hub
from webapp.realtime.periodic import PeriodicCheck


class StreamResync(PeriodicCheck):
    what = "stream resync check"
    log = logging.getLogger("tidings.resync")

    def __init__(self, hub: Hub, sessionmaker: async_sessionmaker[AsyncSession], interval_seconds: float) -> None:
        super().__init__(interval_seconds)
        self.hub = hub
        self.sessionmaker = sessionmaker

    async def tick(self) -> int:
        """One check over every open stream of this process; returns how many were told to resync.
        One query per tick (per IN_CHUNK connected users), however many streams are open."""
        live = self.hub.live()
        if not live:
            return 0
        user_ids = sorted(live)
        positions: dict[int, tuple[int, int]] = {}
        async with self.sessionmaker() as session:
            for start in range(0, len(user_ids), IN_CHUNK):
                rows = await session.execute(
                    select(
                        NotificationCounter.user_id, NotificationCounter.last_seq, NotificationCounter.version
                    ).where(NotificationCounter.user_id.in_(user_ids[start : start + IN_CHUNK]))
                )
                positions.update({uid: (seq, version) for uid, seq, version in rows})
        behind = 0
        for user_id, (seq, version) in positions.items():
            for subscription in live[user_id]:
                if seq > subscription.heard_seq or version > subscription.heard_version:
                    subscription.offer(RESYNC)  # its stream replays from the database, deduplicated by seq
                    behind += 1
        return behind
