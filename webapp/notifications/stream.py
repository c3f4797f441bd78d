"""One user's live inbox stream, independent of the wire format (SSE HTML, SSE JSON, ActionCable).

Order of operations (DESIGN.md §3): subscribe to the doorbell first, then replay from the
database everything after the client's last seq, then go live, dropping any seq already sent.
When continuity cannot be proven (an id the user never had, or more missed items than the
replay limit) the client gets one `reset` and refetches its views.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp import metrics
from webapp.db import finished_even_if_left, is_unavailable
from webapp.notifications.delivered import DeliveredLive
from webapp.notifications.services import InboxState, NotificationData, NotificationService, notification_json
from webapp.realtime.doorbell import Subscription
from webapp.realtime.protocol import (
    ArchiveMessage,
    CloseMessage,
    CountMessage,
    NewMessage,
    ReadMessage,
    ResetMessage,
    ResyncMessage,
    client_fields,
    from_wire,
)

REPLAY_BATCH = 100
# The streams' reads (opening state, replays) a process runs at once. After a deploy or a network
# blip every page reconnects together: beyond the pool's connections the reads would wait in the
# pool, which gives up after DB_CONNECT_TIMEOUT_SECONDS and fails the stream, or open overflow
# connections that are closed again after one read. In this queue they wait as long as it takes,
# on the pool's five kept connections (SQLAlchemy's default pool_size), and leave the overflow
# to requests.
STREAM_READS_AT_ONCE = 5
T = TypeVar("T")
log = logging.getLogger("tidings.stream")


@dataclass(frozen=True)
class StreamConfig:
    heartbeat_seconds: float = 15.0
    max_lifetime_seconds: float = 3600.0
    replay_limit: int = 500
    queue_size: int = 256
    max_connections_per_user: int = 10
    # The waits (each ±50 %, so streams spread out) before a read that got no connection is tried
    # again: a connect that timed out under a reconnect storm, a pool held by other work, a
    # database restarting. The stream stays open meanwhile; after the last, it ends.
    read_retry_seconds: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    # The pauses (each ±50 %, the last repeated while it lasts) before a cable resumes a stream
    # that ended on an unavailable database: its reads have tried again already, and thousands of
    # sockets asking again at once would hold back a database that is coming back. An SSE client
    # paces itself (its reconnect backs off).
    resume_pause_seconds: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class StreamEvent:
    kind: str  # notification | count | read | archive | reset | heartbeat
    seq: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    # Another event follows at once (a live notification's count): a writer may hold this one and
    # write both together, one write per ring for a stream (webapp.web.sse).
    more: bool = False


def stream_deadline(config: StreamConfig, expires_at: float | None) -> tuple[float, bool]:
    """When a stream opened now must end (monotonic time), and whether that is its token's expiry
    (rather than the maximum lifetime)."""
    lifetime_end = time.monotonic() + config.max_lifetime_seconds
    if expires_at is not None and expires_at < lifetime_end:
        return expires_at, True
    return lifetime_end, False


class InboxStream:
    def __init__(
        self,
        *,
        user_id: int,
        last_seq: int | None,
        subscription: Subscription,
        sessionmaker: async_sessionmaker[AsyncSession],
        config: StreamConfig,
        expires_at: float | None = None,
        transport: str = "sse_json",
        delivered: DeliveredLive | None = None,
        reads: asyncio.Semaphore | None = None,
    ) -> None:
        """`reads`: the process's queue of stream reads (STREAM_READS_AT_ONCE), shared by every
        stream; without one, reads go straight to the pool."""
        self.user_id = user_id
        self.reads = reads
        self.delivered = delivered
        self.transport = transport
        self.last_seq = last_seq
        self.subscription = subscription
        self.sessionmaker = sessionmaker
        self.config = config
        self.deadline, self.ends_at_token_expiry = stream_deadline(config, expires_at)
        self.sent_seq = 0  # set by the opening, once it has read the inbox's state
        self.positioned = False
        self.sent_version = -1
        self.closed_by_server = False  # shutdown or a reader too slow: do not resume in-process
        # Why the stream ended (metrics): unless the server ends it, the client left.
        self.end_reason = "client_left"
        self.live = False  # past the opening replay: notifications written now count as delivered

    @property
    def resume_seq(self) -> int | None:
        """Where a stream that takes over from this one starts: after the last seq this one sent,
        or where this one was opened if it never read the inbox's state (its database was
        unavailable)."""
        return self.sent_seq if self.positioned else self.last_seq

    async def events(self) -> AsyncIterator[StreamEvent]:
        """The stream's events; each one written is counted by kind, and a notification written
        live for the first time in this process counts as delivered (and is recorded as such
        for its delivery report)."""
        messages = metrics.STREAM_MESSAGES
        hub = self.subscription.hub
        async for event in self._events():
            messages.labels(self.transport, event.kind).inc()
            if self.live and event.kind == "notification" and hub.first_write(self.user_id, event.seq):
                metrics.observe_delivery(event.payload)
                if self.delivered is not None:
                    self.delivered.record(int(event.payload["id"]), time.time())
            yield event

    async def _events(self) -> AsyncIterator[StreamEvent]:
        self.subscription.started = True
        try:
            async for event in self._opening():
                yield event
            self.live = True
            while True:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    # token expiry or maximum lifetime: the client reconnects and resumes
                    self.end_reason = "token_expiry" if self.ends_at_token_expiry else "lifetime"
                    return
                message = await self.subscription.next(min(self.config.heartbeat_seconds, remaining))
                if message is None:
                    if time.monotonic() < self.deadline:
                        yield StreamEvent("heartbeat")
                    continue
                match from_wire(message):
                    case CloseMessage() as close:
                        self.closed_by_server = True
                        self.end_reason = self._close_reason(close)
                        return
                    case NewMessage() as new:
                        async for event in self._on_new(new):
                            yield event
                    case ReadMessage() | ArchiveMessage() | CountMessage() as change:
                        if self._newer(change.version):
                            yield StreamEvent(change.type, change.seq, client_fields(change))
                    case ResyncMessage():
                        async for event in self._catch_up():
                            yield event
                    # Anything else (a malformed or foreign publish) is ignored.
        except DatabaseUnavailable as exc:
            # Its head is sent: ending it is the one answer left. An SSE client reconnects and
            # resumes from its Last-Event-ID; a cable resumes it in-process (resume_seq).
            self.end_reason = "database_unavailable"
            log.warning("stream ended: database unavailable (%s)", type(exc.__cause__).__name__)
        finally:
            self.subscription.close()

    def _close_reason(self, close: CloseMessage) -> str:
        if self.subscription.overflowed:
            return "slow_reader"
        return "session_ended" if close.reason == "session_ended" else "shutdown"

    async def _opening(self) -> AsyncIterator[StreamEvent]:
        state, missed = await self._read(self._opening_read)
        self.subscription.hear(state.seq, state.version)  # what the resync check compares against
        self.positioned = True  # sent_seq is set below, with nothing in between that can fail
        last = self.last_seq
        if last is not None:
            metrics.RECONNECTS.labels(self.transport).inc()
        if last is None:
            self.sent_seq = state.seq  # a first connect with no position starts from now
        elif not self._replayable(last, state):
            self.sent_seq = state.seq
            metrics.RESETS.labels(self.transport).inc()
            reset = ResetMessage(seq=state.seq, unread_count=state.unread_count, version=state.version)
            yield StreamEvent("reset", state.seq, client_fields(reset))
        else:
            self.sent_seq = last
            replayed = 0
            for event in self._replayed(missed):
                replayed += 1
                yield event
            if len(missed) == REPLAY_BATCH:  # more than one batch was missed
                async for event in self._replay():
                    replayed += 1
                    yield event
            if replayed:
                metrics.REPLAYS.labels(self.transport).inc()
                metrics.REPLAYED_ITEMS.labels(self.transport).inc(replayed)
        async for event in self._count(state):
            yield event

    async def _opening_read(self, service: NotificationService) -> tuple[InboxState, list[NotificationData]]:
        """The state and the first batch of what the client missed, in one session: in a reconnect
        storm every opening's reads are the cost. A client that missed nothing reads no rows."""
        state = await service.state(self.user_id)
        last = self.last_seq
        if last is None or not self._replayable(last, state) or last == state.seq:
            return state, []
        return state, await service.since(self.user_id, last, REPLAY_BATCH)

    def _replayable(self, last: int, state: InboxState) -> bool:
        """Whether continuity from the client's seq can be proven: a seq the user had, no more than
        the replay limit behind (otherwise the client gets a reset)."""
        return 0 <= last <= state.seq and state.seq - last <= self.config.replay_limit

    async def _on_new(self, new: NewMessage) -> AsyncIterator[StreamEvent]:
        counted = self._newer(new.version)
        if new.seq == self.sent_seq + 1:
            self.sent_seq = new.seq  # the live path: contiguous, carried by the doorbell, no DB read
            yield StreamEvent("notification", new.seq, new.notification, more=counted)
        elif new.seq > self.sent_seq:
            async for event in self._replay():  # a gap: the database fills it
                yield event
        if counted:
            yield StreamEvent("count", new.seq, client_fields(new))

    async def _catch_up(self) -> AsyncIterator[StreamEvent]:
        async for event in self._replay():
            yield event
        async for event in self._count(await self._state()):
            yield event

    async def _replay(self) -> AsyncIterator[StreamEvent]:
        while True:
            rows = await self._read(lambda service: service.since(self.user_id, self.sent_seq, REPLAY_BATCH))
            for event in self._replayed(rows):
                yield event
            if len(rows) < REPLAY_BATCH:
                return

    def _replayed(self, rows: list[NotificationData]) -> Iterator[StreamEvent]:
        for row in rows:
            self.sent_seq = row.seq
            # Archived while the client was away: put away already, nothing to show or toast.
            if row.archived_at is None:
                yield StreamEvent("notification", row.seq, notification_json(row))

    async def _count(self, state: InboxState) -> AsyncIterator[StreamEvent]:
        if self._newer(state.version):
            count = CountMessage(
                user=self.user_id, unread_count=state.unread_count, seq=state.seq, version=state.version
            )
            yield StreamEvent("count", state.seq, client_fields(count))

    def _newer(self, version: int) -> bool:
        if version <= self.sent_version:
            return False
        self.sent_version = version
        return True

    async def _state(self) -> InboxState:
        state = await self._read(lambda service: service.state(self.user_id))
        self.subscription.hear(state.seq, state.version)  # what the resync check compares against
        return state

    async def _read(self, query: Callable[[NotificationService], Awaitable[T]]) -> T:
        """A short read in its own session. One that got no connection ran nothing, so it is
        tried again after each of the config's waits; one that failed once connected is not run
        again on a database that may be overloaded."""
        waits = iter(self.config.read_retry_seconds)
        while True:
            try:
                return await finished_even_if_left(self._read_once(query))
            except DatabaseUnavailable as exc:
                wait = next(waits, None) if exc.connecting else None
                if wait is None:
                    raise
            await asyncio.sleep(wait * random.uniform(0.5, 1.5))  # outside the queue of reads

    async def _read_once(self, query: Callable[[NotificationService], Awaitable[T]]) -> T:
        async with self.reads or nullcontext(), self.sessionmaker() as session:
            connecting = True
            try:
                await session.connection()
                connecting = False
                return await query(NotificationService(session))
            except Exception as exc:
                if is_unavailable(exc):
                    raise DatabaseUnavailable(connecting) from exc
                raise


class DatabaseUnavailable(Exception):
    """A stream's read met a database that is down, hung or overloaded (webapp.db.is_unavailable);
    `connecting`: before it had a connection, so nothing ran and it may be tried again."""

    def __init__(self, connecting: bool) -> None:
        super().__init__("connecting" if connecting else "reading")
        self.connecting = connecting
