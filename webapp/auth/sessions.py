"""Keeps this process's list of ended sessions (webapp.realtime.ended_sessions) true to the
database, for when a `session_ended` ring does not arrive.

The ring is only a hint, like every doorbell message: a web process that starts after a logout
never heard it, and one whose Redis connection was down when it was published lost it. So the
list is read from the database when the process starts, before it serves a request, and again
every STREAM_RESYNC_SECONDS: the sessions whose refresh tokens were revoked within the last
access-token lifetime, in one query on an index of `revoked_at`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.auth.models import RefreshToken
from webapp.db import utcnow
from webapp.realtime.ended_sessions import CLOCK_SKEW_SECONDS, EndedSessions
from webapp.realtime.periodic import PeriodicCheck


class EndedSessionsSync(PeriodicCheck):
    what = "ended-sessions check"
    log = logging.getLogger("tidings.sessions")

    def __init__(
        self,
        sessions: EndedSessions,
        sessionmaker: async_sessionmaker[AsyncSession],
        token_lifetime_seconds: float,
        interval_seconds: float,
    ) -> None:
        super().__init__(interval_seconds)
        self.sessions = sessions
        self.sessionmaker = sessionmaker
        self.token_lifetime_seconds = token_lifetime_seconds

    async def tick(self) -> int:
        """Records every session that ended within a token lifetime; returns how many."""
        now = utcnow()
        since = now - timedelta(seconds=self.token_lifetime_seconds + CLOCK_SKEW_SECONDS)
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(RefreshToken.family, func.max(RefreshToken.revoked_at))
                    .where(RefreshToken.revoked_at > since)
                    .group_by(RefreshToken.family)
                )
            ).all()
        self.sessions.record((family, (now - ended_at).total_seconds()) for family, ended_at in rows if ended_at)
        return len(rows)

    async def start(self) -> None:
        # Before the first request: a session that ended while this process was down stays ended.
        await self.tick_logged()
        await super().start()
