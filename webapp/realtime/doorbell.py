"""The doorbell: tells this process's open streams that a user's inbox changed.

It is only a hint. The database is the mailbox; a lost ring delays, never loses, because every
stream re-reads the database by seq when it sees a gap, reconnects, or the doorbell says
"resync". One subscription per process (Redis pub/sub channel, or nothing in embedded mode)
fans out to the local streams through the Hub.

It also carries `session_ended`: the hub records the session in its deny-list of ended sessions
(webapp.realtime.ended_sessions) and that closes the session's streams and `/cable` connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from webapp import metrics
from webapp.realtime.ended_sessions import EndedSessions
from webapp.realtime.protocol import CloseMessage, Message, ResyncMessage, to_wire
from webapp.settings import Settings

log = logging.getLogger("tidings.doorbell")

RESYNC = to_wire(ResyncMessage())
CLOSE = to_wire(CloseMessage())
SESSION_CLOSED = to_wire(CloseMessage(reason="session_ended"))
UNSTARTED_GRACE = 2.0  # seconds


class Subscription:
    """One stream's inbox of doorbell messages. Bounded: a stream that does not keep up is
    marked overflowed and ends; its client resumes by seq.

    A stream that is not the user's inbox (`inbox=False`: a delivery report a page watches) hears
    only what closes streams (shutdown, its session ending, `resync`) but counts against the
    user's cap like any other."""

    def __init__(self, hub: Hub, user_id: int, maxsize: int, inbox: bool = True) -> None:
        self.hub = hub
        self.user_id = user_id
        self.inbox = inbox
        self.unwatch_session: Callable[[], None] | None = None  # set while its session is watched
        # Messages not yet taken, oldest first, and the stream's wait for the next one. A list and
        # a future made only while waiting: an asyncio.Queue holds four deques (3 KB, a tenth of an
        # idle stream's memory; bench/run.py), and a stream takes its few messages as they come.
        self.maxsize = maxsize
        self.pending: list[dict[str, Any]] = []
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.created = time.monotonic()
        # Set when a stream begins consuming. A subscription nobody started within
        # UNSTARTED_GRACE belongs to a client that left before its response body began.
        self.started = False
        # The newest inbox position (seq, version) this stream has heard of, from the database or
        # a ring. The periodic resync compares it with the counters to find rings that were lost.
        self.heard_seq = 0
        self.heard_version = 0

    def hear(self, seq: int, version: int) -> None:
        self.heard_seq = max(self.heard_seq, seq)
        self.heard_version = max(self.heard_version, version)

    def offer(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        if "seq" in message or "version" in message:
            self.hear(int(message.get("seq") or 0), int(message.get("version") or 0))
        if len(self.pending) < self.maxsize:
            self.pending.append(message)
        else:
            self.overflowed = True
            self.pending = [CLOSE]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, wait_seconds: float) -> dict[str, Any] | None:
        """The next message, or None when nothing came within the timeout."""
        if not self.pending:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                # asyncio.timeout: a deadline on this task, nothing more to schedule per message.
                async with asyncio.timeout(wait_seconds):
                    await self._waiter
            except TimeoutError:
                return None
            finally:
                self._waiter = None
        return self.pending.pop(0)

    def close(self) -> None:
        self.hub.unsubscribe(self)


class Hub:
    """This process's streams, by user."""

    def __init__(self, unstarted_grace: float = UNSTARTED_GRACE, sessions: EndedSessions | None = None) -> None:
        self._by_user: dict[int, set[Subscription]] = defaultdict(set)
        # The newest seq written live to any stream of a user with open streams (metrics: a
        # notification is delivered once, however many of its recipient's tabs show it).
        self._delivered: dict[int, int] = {}
        self.unstarted_grace = unstarted_grace
        self.sessions = sessions if sessions is not None else EndedSessions()
        self._closing: set[Callable[[], None]] = set()

    def subscribe(self, user_id: int, maxsize: int, session: str | None = None, inbox: bool = True) -> Subscription:
        """`session`: the stream closes as soon as that session ends."""
        subscription = Subscription(self, user_id, maxsize, inbox)
        self._by_user[user_id].add(subscription)
        if session is not None:
            subscription.unwatch_session = self.sessions.watch(session, lambda: subscription.offer(SESSION_CLOSED))
        # A client that leaves before its response body begins never runs the stream, so nothing
        # else would ever close this subscription: drop it once the grace has passed unstarted.
        asyncio.get_running_loop().call_later(self.unstarted_grace, self._drop_if_unstarted, subscription)
        return subscription

    def _drop_if_unstarted(self, subscription: Subscription) -> None:
        if not subscription.started:
            self.unsubscribe(subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription.unwatch_session is not None:
            subscription.unwatch_session()
            subscription.unwatch_session = None
        subscribers = self._by_user.get(subscription.user_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._by_user[subscription.user_id]
                self._delivered.pop(subscription.user_id, None)

    def first_write(self, user_id: int, seq: int | None) -> bool:
        """Whether a stream of this user writing `seq` is its first live write in this process."""
        if seq is None or seq <= self._delivered.get(user_id, 0):
            return False
        self._delivered[user_id] = seq
        return True

    def count(self, user_id: int) -> int:
        """Open subscriptions of a user, after dropping those abandoned before they started."""
        cutoff = time.monotonic() - self.unstarted_grace
        for subscription in tuple(self._by_user.get(user_id, ())):
            if not subscription.started and subscription.created < cutoff:
                self.unsubscribe(subscription)
        return len(self._by_user.get(user_id, ()))

    def total(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def live(self) -> dict[int, list[Subscription]]:
        """The running, not overflowed subscriptions, by user."""
        live: dict[int, list[Subscription]] = {}
        for user_id, subscribers in self._by_user.items():
            running = [s for s in subscribers if s.inbox and s.started and not s.overflowed]
            if running:
                live[user_id] = running
        return live

    def deliver(self, message: dict[str, Any]) -> None:
        metrics.DOORBELL_RECEIVED.inc()
        if message.get("type") == "session_ended":
            self.sessions.end(str(message["session"]))  # closes the session's streams, refuses its tokens
            return
        subscribers = tuple(s for s in self._by_user.get(int(message["user"]), ()) if s.inbox)
        if message.get("type") == "new" and any(s.started and not s.overflowed for s in subscribers):
            metrics.LIVE_RECIPIENTS.inc()
        for subscription in subscribers:
            subscription.offer(message)

    def when_closing(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Calls `callback` when this process closes every stream (it is stopping), for streams
        that hold no subscription (the operations page's); returns the function that forgets it."""
        self._closing.add(callback)
        return lambda: self._closing.discard(callback)

    def broadcast(self, message: dict[str, Any]) -> None:
        if message.get("type") == "close":
            for callback in tuple(self._closing):
                callback()
        for subscribers in tuple(self._by_user.values()):
            for subscription in tuple(subscribers):
                subscription.offer(message)


class Doorbell(Protocol):
    hub: Hub

    def ring(self, messages: Iterable[dict[str, Any]]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class LocalDoorbell:
    """Embedded mode: rings go straight to this process's streams. Jobs run on their own
    event-loop thread in this mode, so a ring from there is handed over thread-safely."""

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub or Hub()
        self.loop: asyncio.AbstractEventLoop | None = None

    def ring(self, messages: Iterable[dict[str, Any]]) -> None:
        batch = list(messages)
        metrics.DOORBELL_PUBLISHED.inc(len(batch))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self.loop is None or running is self.loop:
            self._deliver(batch)
        else:
            self.loop.call_soon_threadsafe(self._deliver, batch)

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.hub.deliver(message)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self.hub.broadcast(CLOSE)


class RedisDoorbell:
    """Scaled mode: rings are published on one Redis channel that every web process of the
    deployment listens to; the channel is in the deployment's namespace, so another deployment
    on the same Redis never hears them.

    When the listening connection breaks and comes back, every local stream is told to
    re-check the database, so nothing published meanwhile is lost. Every Redis call has the
    connect and read timeouts of `redis_options`, so a hung server costs a ring, never a stall.
    """

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        redis_options: dict[str, Any] | None = None,
        hub: Hub | None = None,
        listen: bool = True,
    ) -> None:
        self.hub = hub or Hub()
        self.redis_url = redis_url
        self.channel = f"{namespace}:doorbell"
        self.redis_options = redis_options or {}
        self.listen = listen
        self._publisher = Redis.from_url(redis_url, **self.redis_options)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @classmethod
    def from_settings(cls, settings: Settings, hub: Hub | None = None, listen: bool = True) -> RedisDoorbell:
        if not settings.redis_url:
            raise ValueError("a Redis doorbell needs REDIS_URL")
        return cls(settings.redis_url, settings.redis_namespace, settings.redis_options, hub=hub, listen=listen)

    def ring(self, messages: Iterable[dict[str, Any]]) -> None:
        batch = list(messages)
        for message in batch:
            if message.get("type") == "session_ended":
                # This process refuses the session at once, without waiting for its own ring to
                # come back from Redis: the client's next request may well come here.
                self.hub.deliver(message)
        payloads = [json.dumps(m, separators=(",", ":")) for m in batch]
        if not payloads:
            return
        task = asyncio.get_running_loop().create_task(self._publish(payloads))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, payloads: list[str]) -> None:
        try:
            async with self._publisher.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.publish(self.channel, payload)
                await pipe.execute()
            metrics.DOORBELL_PUBLISHED.inc(len(payloads))
        except RedisError as exc:
            metrics.REDIS_ERRORS.labels("doorbell_publish").inc()
            # The rows are committed; streams will find them on their next check or reconnect.
            log.warning("doorbell publish failed (%s); streams will catch up from the database", exc)

    async def start(self) -> None:
        if self.listen:
            self._listener = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._listener:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.hub.broadcast(CLOSE)
        await self._publisher.aclose()

    async def _listen_forever(self) -> None:
        delay = 0.1
        first = True
        while True:
            # The timeouts bound connecting and subscribing; waiting for messages blocks without one.
            client = Redis.from_url(self.redis_url, **self.redis_options)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.connected.set()
                if not first:
                    log.info("doorbell reconnected; local streams re-check the database")
                    self.hub.broadcast(RESYNC)
                first = False
                delay = 0.1
                async for raw in pubsub.listen():
                    if raw.get("type") == "message":
                        self.hub.deliver(json.loads(raw["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                metrics.REDIS_ERRORS.labels("doorbell_listen").inc()
                self.connected.clear()
                log.warning("doorbell connection lost (%s); retrying in %.1f s", exc, delay)
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


_current: Doorbell | None = None


def set_doorbell(doorbell: Doorbell | None) -> None:
    global _current
    _current = doorbell


def current_doorbell() -> Doorbell | None:
    return _current


def queue_after_commit(session: Session, messages: Iterable[Message]) -> None:
    """Rings once the session's transaction commits; forgotten if it rolls back."""
    session.info.setdefault("doorbell_pending", []).extend(to_wire(message) for message in messages)


@event.listens_for(Session, "after_commit")
def _ring_after_commit(session: Session) -> None:
    pending = session.info.pop("doorbell_pending", None)
    if pending:
        metrics.count_committed(pending)  # committed now: counted whether or not anyone listens
    if pending and _current is not None:
        _current.ring(pending)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("doorbell_pending", None)
