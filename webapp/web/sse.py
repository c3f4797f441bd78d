"""The two Server-Sent Events endpoints: HTML fragments for the web UI, JSON for API clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from operator import attrgetter
from typing import Any, TypeVar

from litestar import Request, get
from litestar.response import ServerSentEventMessage

from webapp import metrics
from webapp.http import session_of, signed_in_user
from webapp.long_lived import LONG_LIVED
from webapp.notifications.stream import InboxStream, StreamEvent
from webapp.notifications.views import render_item
from webapp.openapi import api_doc
from webapp.realtime.doorbell import Subscription
from webapp.sse_response import EventStreamResponse
from webapp.web.stream_access import admit, parse_last_seq, require_stream_user, take_slot, token_deadline

Encoder = Callable[[StreamEvent], ServerSentEventMessage]
RETRY_MS = 2000
CONNECTED = ServerSentEventMessage(data=None, comment="connected", retry=RETRY_MS).encode()
Item = TypeVar("Item")

# The named events of the API stream, by kind of stream event, with what each carries: the
# encoder below sends these names and the OpenAPI description lists them (x-sse-events).
API_EVENTS = {
    "notification": ("new_notification", "a new notification, as the JSON API shows it; `id:` is its seq"),
    "count": ("notification_count", "{unread_count, seq, version}: apply only if version is newer"),
    "read": ("notification_read", "{ids, read, unread_count, seq, version, up_to_seq}: read state changed"),
    "archive": (
        "notification_archived",
        "{ids, archived, unread_count, seq, version}: archived (or, archived false, brought back)",
    ),
    "reset": ("reset", "{seq, unread_count, version}: continuity was lost; adopt these and refetch"),
}
# Kinds whose SSE `id:` is the seq, so that Last-Event-ID resumes from them.
_WITH_ID = ("notification", "reset")


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def api_encoder(event: StreamEvent) -> ServerSentEventMessage:
    if event.kind not in API_EVENTS:
        return ServerSentEventMessage(data=None, comment="keep-alive")
    seq = event.seq if event.kind in _WITH_ID else None
    return ServerSentEventMessage(event=API_EVENTS[event.kind][0], id=seq, data=_json(event.payload))


def page_encoder(timezone: str, environment: Any) -> Encoder:
    def encode(event: StreamEvent) -> ServerSentEventMessage:
        if event.kind == "notification":
            html = render_item(environment, event.payload, timezone)
            return ServerSentEventMessage(event="notification", id=event.seq, data=html)
        if event.kind in ("count", "read", "archive"):
            return ServerSentEventMessage(event=event.kind, data=_json(event.payload))
        if event.kind == "reset":
            return ServerSentEventMessage(event="reset", id=event.seq, data=_json(event.payload))
        return ServerSentEventMessage(data=None, comment="keep-alive")

    return encode


def event_stream(messages: AsyncIterator[ServerSentEventMessage]) -> EventStreamResponse:
    """A `text/event-stream` response whose body is the messages, encoded as they come. Litestar's
    own ServerSentEvent pulls its leading lines through a worker thread first: a thread hop on
    every stream opening (bench/run.py's profile)."""

    async def body() -> AsyncIterator[bytes]:
        async for message in messages:
            yield message.encode()

    return EventStreamResponse(body())


def _open(request: Request[Any, Any, Any], encode: Encoder) -> EventStreamResponse:
    state = request.app.state
    transport = request.route_handler.opt["transport"]
    user = admit(request, state.settings, transport)
    last_seq = parse_last_seq(request.headers.get("last-event-id"), request.query_params.get("last_event_id"))
    # Subscribing takes one of the user's slots at once (check and take in one step, so streams
    # opened together cannot all slip under the cap), and before the stream reads the database,
    # so nothing falls in between.
    subscription = take_slot(state.doorbell.hub, user.id, state.stream_config, transport, session_of(request))
    stream = InboxStream(
        user_id=user.id,
        last_seq=last_seq,
        subscription=subscription,
        sessionmaker=state.reader_sessionmaker,
        config=state.stream_config,
        expires_at=token_deadline(request),
        transport=transport,
        delivered=state.delivered_live,
        reads=state.stream_reads,
    )

    return inbox_answer(stream, encode)


def inbox_answer(stream: InboxStream, encode: Encoder) -> EventStreamResponse:
    """The answer that writes an inbox stream: a live notification and its count in one write."""
    return counted_stream(
        stream.transport,
        stream.events(),
        encode,
        stream.subscription,
        lambda: stream.end_reason,
        held=attrgetter("more"),
    )


def counted_stream(
    transport: str,
    events: AsyncIterator[Item],
    encode: Callable[[Item], ServerSentEventMessage],
    subscription: Subscription,
    end_reason: Callable[[], str],
    held: Callable[[Item], bool] | None = None,
) -> EventStreamResponse:
    """A stream of `events`, encoded as they come, counted open while it runs, its doorbell slot
    freed when it ends. One generator around the events: each layer of generators was kept alive
    by every idle stream (bench/run.py's memory per stream). An event `held` says is written
    together with the one after it (StreamEvent.more).

    A client that leaves before the body starts means this generator never runs, so its `finally`
    never does: the hub then frees the never-started slot after a short grace."""

    async def body() -> AsyncIterator[bytes]:
        metrics.CONNECTIONS_OPENED.labels(transport).inc()
        metrics.CONNECTIONS_OPEN.labels(transport).inc()
        try:
            yield CONNECTED
            waiting = b""
            async for event in events:
                encoded = waiting + encode(event).encode()
                if held is not None and held(event):
                    waiting = encoded
                    continue
                waiting = b""
                yield encoded
            if waiting:  # held with nothing after it: the events ended there
                yield waiting
        finally:
            subscription.close()
            metrics.CONNECTIONS_OPEN.labels(transport).dec()
            metrics.CONNECTIONS_CLOSED.labels(transport, end_reason()).inc()

    return EventStreamResponse(body())


@get(
    "/notifications/stream",
    guards=[require_stream_user],
    opt={"transport": "sse_html", LONG_LIVED: True},
    include_in_schema=False,
)
async def page_stream(request: Request[Any, Any, Any]) -> EventStreamResponse:
    environment = request.app.template_engine.engine  # type: ignore[union-attr]
    timezone = (await signed_in_user(request)).timezone  # items are rendered in the user's zone
    return _open(request, page_encoder(timezone, environment))


@get(
    "/api/v1/notifications/stream",
    guards=[require_stream_user],
    opt={"transport": "sse_json", LONG_LIVED: True},
    tags=["notifications"],
    **api_doc("Stream notifications as Server-Sent Events", 403, 429, auth=True, events=dict(API_EVENTS.values())),
)
async def api_stream(request: Request[Any, Any, Any]) -> EventStreamResponse:
    """Replays what came after `Last-Event-ID` (or `?last_event_id=` on a first connect), then
    sends live. Heartbeat comments keep proxies open; the stream ends at the token's expiry and
    the client reconnects. 403: an `Origin` not in ALLOWED_ORIGINS; 429: too many open streams."""
    return _open(request, api_encoder)
