"""`WS /cable`: the ActionCable protocol (actioncable-v1-json), so existing ActionCable clients
work unchanged. One channel, NotificationsChannel, fed by the same InboxStream as the SSE
endpoints; actions `mark_as_read {id}` and `mark_all_as_read`.

The subscription identifier may carry `last_seq` to resume exactly where a client left off; plain
ActionCable clients omit it and get everything from the moment they subscribe.

A connection whose session ends (logout, a reused refresh token) is told ActionCable's
`disconnect` with reason `unauthorized` and `reconnect: false`, and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from webapp import metrics
from webapp.errors import DomainError
from webapp.http import session_of
from webapp.notifications.services import NotificationService
from webapp.notifications.stream import InboxStream, StreamEvent
from webapp.realtime.doorbell import Subscription
from webapp.validation import is_row_id
from webapp.web.stream_access import TooManyConnections, origin_allowed, take_slot, token_deadline

log = logging.getLogger("tidings.cable")

PROTOCOL = "actioncable-v1-json"
CHANNEL = "NotificationsChannel"
PING_SECONDS = 3.0
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455 §7.4.1: the server is overloaded for this client
DISCONNECT_SECONDS = 20.0  # how long a stalled client may take to read its disconnect before it is cut off


def _frame(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))


def _channel_message(event: StreamEvent) -> dict[str, Any] | None:
    if event.kind == "notification":
        return {"type": "new_notification", "notification": event.payload}
    if event.kind in ("count", "reset"):
        return {"type": "notification_count", "unread_count": event.payload.get("unread_count"), "seq": event.seq}
    if event.kind == "read":
        return {"type": "notification_read", **event.payload}
    if event.kind == "archive":
        return {"type": "notification_archived", **event.payload}
    return None


class CableConnection:
    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self.socket = socket
        self.state = socket.app.state
        self.user = socket.scope.get("user")
        self.subscriptions: dict[str, asyncio.Task[None]] = {}
        self.send_lock = asyncio.Lock()
        self.ended = asyncio.Event()  # the server ended the connection (told the client to reconnect)
        self.end_reason = "client_left"  # metrics: unless the server ends it, the client left

    async def send(self, **fields: Any) -> None:
        async with self.send_lock:
            await self.socket.send_text(_frame(**fields))

    async def run(self) -> None:
        offered = [p.strip() for p in self.socket.headers.get("sec-websocket-protocol", "").split(",")]
        if not origin_allowed(self.socket, self.state.settings):
            metrics.CONNECTIONS_REFUSED.labels("cable", "origin").inc()
            await self.socket.close(code=4403, reason="origin not allowed")  # before accept: HTTP 403
            return
        await self.socket.accept(subprotocols=PROTOCOL if PROTOCOL in offered else None)
        if self.user is None:
            metrics.CONNECTIONS_REFUSED.labels("cable", "auth").inc()
            await self.send(type="disconnect", reason="unauthorized", reconnect=False)
            await self.socket.close(code=1000)
            return
        sockets = self.state.cable_sockets
        if not sockets.take(self.user.id, self.state.stream_config.max_connections_per_user):
            # As ActionCable's reject_unauthorized_connection, with the reason: no reconnect loop.
            metrics.CONNECTIONS_REFUSED.labels("cable", "cap").inc()
            await self.send(type="disconnect", reason="too_many_connections", reconnect=False)
            await self.socket.close(code=CLOSE_TRY_AGAIN_LATER, reason="too many connections")
            return
        metrics.CONNECTIONS_OPENED.labels("cable").inc()
        metrics.CONNECTIONS_OPEN.labels("cable").inc()
        try:
            await self._serve()
        finally:
            sockets.release(self.user.id)
            metrics.CONNECTIONS_OPEN.labels("cable").dec()
            metrics.CONNECTIONS_CLOSED.labels("cable", self.end_reason).inc()

    async def _serve(self) -> None:
        await self.send(type="welcome")
        deadline = token_deadline(self.socket)
        session_over = asyncio.Event()
        session = session_of(self.socket)
        unwatch = self.state.doorbell.hub.sessions.watch(session, session_over.set) if session else None
        pinger = asyncio.create_task(self._ping(deadline))
        receiver = asyncio.create_task(self._receive())
        ended = asyncio.create_task(self.ended.wait())
        over = asyncio.create_task(session_over.wait())
        try:
            # Returning ends the connection even if the client never took the close.
            done, _ = await asyncio.wait((receiver, ended, over), return_when=asyncio.FIRST_COMPLETED)
            if over in done:
                stopping = (pinger, *self.subscriptions.values())
                for stopped in stopping:
                    stopped.cancel()  # nothing more of this session goes out
                await asyncio.gather(*stopping, return_exceptions=True)
                self.end_reason = "session_ended"
                await self._disconnect("unauthorized", reconnect=False)
        finally:
            if unwatch:
                unwatch()
            for task in (pinger, receiver, ended, over, *self.subscriptions.values()):
                task.cancel()
            await asyncio.gather(pinger, receiver, ended, over, *self.subscriptions.values(), return_exceptions=True)

    async def _receive(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await self._dispatch(await self.socket.receive_text())

    async def _ping(self, deadline: float | None) -> None:
        while deadline is None or time.monotonic() < deadline:
            await self.send(type="ping", message=int(time.time()))
            await asyncio.sleep(PING_SECONDS)
        self.end_reason = "token_expiry"
        await self._disconnect("token_expired")  # the client reconnects and authenticates again

    async def _disconnect(self, reason: str, reconnect: bool = True) -> None:
        """ActionCable's `disconnect`, then the close: with `reconnect`, the client reconnects and
        subscribes again. Bounded in time, since a reader too slow to keep up may not take it."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send(type="disconnect", reason=reason, reconnect=reconnect), DISCONNECT_SECONDS)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.socket.close(code=1000), DISCONNECT_SECONDS)
        self.ended.set()

    async def _dispatch(self, raw: str) -> None:
        try:
            frame = json.loads(raw)
            command = frame["command"]
            identifier = frame["identifier"]
            params = json.loads(identifier)
        except (ValueError, KeyError, TypeError):
            log.info("ignored a malformed cable frame")  # as ActionCable does: log, keep the connection
            return
        if not isinstance(params, dict):
            return
        if command == "subscribe":
            await self._subscribe(identifier, params)
        elif command == "unsubscribe":
            task = self.subscriptions.pop(identifier, None)
            if task:
                task.cancel()
        elif command == "message" and identifier in self.subscriptions:
            await self._perform(frame.get("data"))
        else:
            log.info("ignored cable command %r", command)

    async def _subscribe(self, identifier: str, params: dict[str, Any]) -> None:
        if params.get("channel") != CHANNEL or identifier in self.subscriptions:
            await self.send(identifier=identifier, type="reject_subscription")
            return
        try:
            subscription = take_slot(self.state.doorbell.hub, self.user.id, self.state.stream_config, "cable")
        except TooManyConnections:
            await self.send(identifier=identifier, type="reject_subscription")
            return
        last_seq = params.get("last_seq")
        start = last_seq if isinstance(last_seq, int) and not isinstance(last_seq, bool) else None
        await self.send(identifier=identifier, type="confirm_subscription")
        self.subscriptions[identifier] = asyncio.create_task(self._forward(identifier, subscription, start))

    async def _forward(self, identifier: str, subscription: Subscription, last_seq: int | None) -> None:
        """Streams until the socket closes. A stream that reaches its maximum lifetime, or that
        ended because the database was unavailable (after its own waits and tries), is resumed
        here from the last seq sent: ActionCable clients resubscribe without a position, so
        handing the reconnect to them could lose what arrives in between. After a database that
        was unavailable, it pauses first (StreamConfig.resume_pause_seconds)."""
        config = self.state.stream_config
        unavailable_in_a_row = 0
        try:
            while True:
                stream = InboxStream(
                    user_id=self.user.id,
                    last_seq=last_seq,
                    subscription=subscription,
                    sessionmaker=self.state.reader_sessionmaker,
                    config=config,
                    transport="cable",
                    delivered=self.state.delivered_live,
                    reads=self.state.stream_reads,
                )
                async for event in stream.events():
                    message = _channel_message(event)
                    if message is not None:
                        await self.send(identifier=identifier, message=message)
                if stream.closed_by_server:
                    # A reader too slow for its buffer, or a server shutting down: never leave the
                    # socket open and pinging while nothing reaches the channel any more. The client
                    # resubscribes (with `last_seq`, to resume without loss).
                    self.end_reason = stream.end_reason
                    await self._disconnect("slow_reader" if subscription.overflowed else "server_restart")
                    return
                last_seq = stream.resume_seq
                subscription = self.state.doorbell.hub.subscribe(self.user.id, config.queue_size)
                if stream.end_reason == "database_unavailable":
                    # Held through the pause for this socket: not the slot of a client that left
                    # before its stream began, which the hub drops after a short grace.
                    subscription.started = True
                    # A stream that opened and later failed starts the pauses again.
                    unavailable_in_a_row = 1 if stream.positioned else unavailable_in_a_row + 1
                    pauses = config.resume_pause_seconds
                    await asyncio.sleep(pauses[min(unavailable_in_a_row, len(pauses)) - 1] * random.uniform(0.5, 1.5))
        finally:
            subscription.close()  # also when cancelled before the stream began

    async def _perform(self, data: Any) -> None:
        try:
            payload = json.loads(data) if isinstance(data, str) else data
            action = payload["action"]
        except (ValueError, KeyError, TypeError):
            log.info("ignored a malformed cable action")
            return
        async with self.state.sessionmaker() as session:
            service = NotificationService(session)
            try:
                if action == "mark_as_read":
                    notification_id = int(payload["id"])
                    if not is_row_id(notification_id):
                        raise ValueError("id out of range")
                    await service.mark_read(self.user.id, notification_id)
                elif action == "mark_all_as_read":
                    up_to = payload.get("up_to_seq")
                    # the service refuses a seq outside the database's range
                    await service.mark_all_read(self.user.id, up_to if isinstance(up_to, int) else None)
                else:
                    log.info("ignored unknown cable action %r", action)
                await session.commit()  # one action, one unit of work
            except (DomainError, KeyError, ValueError, TypeError):
                log.info("refused cable action %r", action)  # someone else's id, or a bad one


@websocket("/cable")
async def cable(socket: WebSocket[Any, Any, Any]) -> None:
    await CableConnection(socket).run()
