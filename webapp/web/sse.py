"""The two Server-Sent Events endpoints: HTML fragments for the web UI, JSON for API clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Request, get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from webapp.http import require_user, session_of
from webapp.notifications.stream import InboxStream, StreamEvent
from webapp.notifications.views import render_item
from webapp.web.stream_access import admit, parse_last_seq, take_slot, token_deadline

Encoder = Callable[[StreamEvent], ServerSentEventMessage]
HEADERS = {"Cache-Control": "no-cache, no-transform"}
RETRY_MS = 2000


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def api_encoder(event: StreamEvent) -> ServerSentEventMessage:
    if event.kind == "notification":
        return ServerSentEventMessage(event="new_notification", id=event.seq, data=_json(event.payload))
    if event.kind == "count":
        return ServerSentEventMessage(event="notification_count", data=_json(event.payload))
    if event.kind == "read":
        return ServerSentEventMessage(event="notification_read", data=_json(event.payload))
    if event.kind == "reset":
        return ServerSentEventMessage(event="reset", id=event.seq, data=_json(event.payload))
    return ServerSentEventMessage(data=None, comment="keep-alive")


def page_encoder(timezone: str, environment: Any) -> Encoder:
    def encode(event: StreamEvent) -> ServerSentEventMessage:
        if event.kind == "notification":
            html = render_item(environment, event.payload, timezone)
            return ServerSentEventMessage(event="notification", id=event.seq, data=html)
        if event.kind in ("count", "read"):
            return ServerSentEventMessage(event=event.kind, data=_json(event.payload))
        if event.kind == "reset":
            return ServerSentEventMessage(event="reset", id=event.seq, data=_json(event.payload))
        return ServerSentEventMessage(data=None, comment="keep-alive")

    return encode


def _open(request: Request[Any, Any, Any], encode: Encoder) -> ServerSentEvent:
    state = request.app.state
    user = admit(request, state.settings)
    last_seq = parse_last_seq(request.headers.get("last-event-id"), request.query_params.get("last_event_id"))
    # Subscribing takes one of the user's slots at once (check and take in one step, so streams
    # opened together cannot all slip under the cap), and before the stream reads the database,
    # so nothing falls in between.
    subscription = take_slot(state.doorbell.hub, user.id, state.stream_config, session_of(request))
    stream = InboxStream(
        user_id=user.id,
        last_seq=last_seq,
        subscription=subscription,
        sessionmaker=state.reader_sessionmaker,
        config=state.stream_config,
        expires_at=token_deadline(request),
    )

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        try:
            yield ServerSentEventMessage(data=None, comment="connected", retry=RETRY_MS)
            async for event in stream.events():
                yield encode(event)
        finally:
            subscription.close()

    # A client that leaves before the body starts means this generator never runs, so its
    # `finally` never does: the hub then frees the never-started slot after a short grace.
    return ServerSentEvent(messages(), headers=HEADERS)


@get("/notifications/stream", guards=[require_user], include_in_schema=False)
async def page_stream(request: Request[Any, Any, Any]) -> ServerSentEvent:
    environment = request.app.template_engine.engine  # type: ignore[union-attr]
    return _open(request, page_encoder(request.user.timezone, environment))


@get("/api/v1/notifications/stream", guards=[require_user])
async def api_stream(request: Request[Any, Any, Any]) -> ServerSentEvent:
    """Server-Sent Events: `new_notification` (id = seq), `notification_count`, `notification_read`, `reset`."""
    return _open(request, api_encoder)
