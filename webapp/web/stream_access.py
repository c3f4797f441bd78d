"""Who may open a real-time connection: a signed-in user, from an allowed origin, under the cap."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from webapp import metrics
from webapp.auth.caller import Caller
from webapp.notifications.stream import StreamConfig
from webapp.realtime.doorbell import Hub, Subscription
from webapp.settings import Settings


class TooManyConnections(HTTPException):
    status_code = 429


class SocketSlots:
    """Open `/cable` sockets per user in this process. A socket costs memory and a ping task even
    before it subscribes, so sockets are capped like streams (STREAM_MAX_CONNECTIONS_PER_USER);
    each subscription on a socket also takes a stream slot."""

    def __init__(self) -> None:
        self._open: Counter[int] = Counter()

    def take(self, user_id: int, cap: int) -> bool:
        """Takes a slot if one is free; no await between the check and the take."""
        if self._open[user_id] >= cap:
            return False
        self._open[user_id] += 1
        return True

    def release(self, user_id: int) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]


def origin_allowed(connection: ASGIConnection[Any, Any, Any, Any], settings: Settings) -> bool:
    """Browsers always send Origin on cross-site requests and WebSocket handshakes; a request
    without one comes from a non-browser client, which cookies cannot be stolen through."""
    origin = connection.headers.get("origin")
    return origin is None or origin.rstrip("/") in settings.allowed_origins


async def require_stream_user(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The guard of the SSE endpoints (`opt={"transport": ...}`): as require_user, counted."""
    if connection.user is None:
        metrics.CONNECTIONS_REFUSED.labels(handler.opt["transport"], "auth").inc()
        raise NotAuthorizedException("Log in to continue.")


def admit(connection: ASGIConnection[Any, Any, Any, Any], settings: Settings, transport: str) -> Caller:
    user = connection.user
    if user is None:
        metrics.CONNECTIONS_REFUSED.labels(transport, "auth").inc()
        raise NotAuthorizedException("Log in to continue.")
    if not origin_allowed(connection, settings):
        metrics.CONNECTIONS_REFUSED.labels(transport, "origin").inc()
        raise PermissionDeniedException("This origin may not open a stream.")
    return user  # type: ignore[no-any-return]


def take_slot(
    hub: Hub, user_id: int, config: StreamConfig, transport: str, session: str | None = None, inbox: bool = True
) -> Subscription:
    """Subscribes within the per-user cap; no await between the check and the subscription.
    With `session`, the stream closes as soon as that session ends. `inbox=False`: a stream of
    something else (a delivery report), closed like the others, taking a slot like them."""
    if hub.count(user_id) >= config.max_connections_per_user:
        metrics.CONNECTIONS_REFUSED.labels(transport, "cap").inc()
        raise TooManyConnections(detail=f"At most {config.max_connections_per_user} open streams per user.")
    return hub.subscribe(user_id, config.queue_size, session, inbox)


def token_deadline(connection: ASGIConnection[Any, Any, Any, Any]) -> float | None:
    """The monotonic time at which this connection's access token expires, if it has one."""
    info = connection.scope.get("auth")
    expires_at = getattr(info, "expires_at", None)
    if expires_at is None:
        return None
    return float(time.monotonic() + (expires_at.timestamp() - time.time()))


def parse_last_seq(header: str | None, query: str | None) -> int | None:
    """The client's position: the Last-Event-ID header wins over ?last_event_id= (first connect).
    Anything that is not a seq is an id the user never had: -1, which makes the stream reset."""
    raw = header if header not in (None, "") else query
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        return -1
