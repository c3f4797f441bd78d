"""Delivery reports: the JSON API, and the live streams that keep a page's reports current.

A page shows its reports in a fragment (`_delivery_reports.html`) inside an element with
`hx-sse:connect` to one of the streams below: each stream re-counts its reports every
DELIVERY_REPORT_REFRESH_SECONDS on the server and sends the fragment again (an unnamed SSE
message, which htmx swaps in) only when a number changed. Streams end like the inbox streams: at
the token's expiry or the maximum lifetime (htmx reconnects), at shutdown, and when the session
ends; each holds one of the user's stream slots.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from litestar import Controller, Request, get
from litestar.response import ServerSentEventMessage

from webapp.auth.models import User
from webapp.http import DbSession, PageCursor, PageLimit, RowId, require_user, session_of, signed_in_user
from webapp.long_lived import LONG_LIVED
from webapp.notifications.delivery_reports import (
    DeliveryCounts,
    DeliveryReportJson,
    DeliveryReportPage,
    DeliveryReports,
    ReportWatch,
)
from webapp.notifications.stream import stream_deadline
from webapp.openapi import api_doc
from webapp.pagination import DEFAULT_PAGE_SIZE
from webapp.sse_response import EventStreamResponse
from webapp.web.sse import counted_stream
from webapp.web.stream_access import admit, require_stream_user, take_slot, token_deadline

PAGE_REPORTS = 10  # reports a page shows (and keeps current)
TRANSPORT = "sse_html"
NOT_FOUND = "No such event."


class DeliveryApi(Controller):
    path = "/api/v1"
    guards = [require_user]
    tags = ["deliveries"]

    @get(
        "/events/{event_id:int}/deliveries",
        **api_doc("List an event's delivery reports, newest first (its organizer and admins)", 404, 422, auth=True),
    )
    async def for_event(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        event_id: RowId,
        limit: PageLimit = DEFAULT_PAGE_SIZE,
        cursor: PageCursor = None,
    ) -> DeliveryReportPage:
        """The reports of the event's announcements, updates and cancellation: counts only."""
        found, next_cursor = await DeliveryReports(db_session).for_event(
            await signed_in_user(request), event_id, limit, cursor
        )
        return {"items": [report.json() for report in found], "next_cursor": next_cursor}

    @get(
        "/deliveries/{report_id:int}",
        **api_doc("Show one delivery report (its sender, the event's organizer, admins)", 404, 422, auth=True),
    )
    async def show(
        self, request: Request[Any, Any, Any], db_session: DbSession, report_id: RowId
    ) -> DeliveryReportJson:
        return (await DeliveryReports(db_session).get(await signed_in_user(request), report_id)).json()


def report_fragment(
    request: Request[Any, Any, Any], reports: Sequence[DeliveryCounts], empty: str, timezone: str
) -> str:
    environment = request.app.template_engine.engine  # type: ignore[union-attr]
    template = environment.get_template("_delivery_reports.html")
    return str(template.render(reports=reports, timezone=timezone, empty=empty))


def watch_reports(
    request: Request[Any, Any, Any],
    viewer: User,
    load: Callable[[DeliveryReports], Awaitable[list[DeliveryCounts]]],
    empty: str,
) -> EventStreamResponse:
    """A stream of the reports `load` counts, for a viewer already allowed to see them (times in
    the viewer's zone)."""
    state = request.app.state
    user = admit(request, state.settings, TRANSPORT)
    config = state.stream_config
    subscription = take_slot(state.doorbell.hub, user.id, config, TRANSPORT, session_of(request), inbox=False)
    deadline, at_token_expiry = stream_deadline(config, token_deadline(request))
    watch = ReportWatch(
        subscription,
        state.settings.delivery_report_refresh_seconds,
        config.heartbeat_seconds,
        deadline,
        at_token_expiry,
    )

    async def counted() -> list[DeliveryCounts]:
        async with state.reader_sessionmaker() as session:
            return await load(DeliveryReports(session))

    def encode(reports: list[DeliveryCounts] | None) -> ServerSentEventMessage:
        if reports is None:
            return ServerSentEventMessage(data=None, comment="keep-alive")
        return ServerSentEventMessage(data=report_fragment(request, reports, empty, viewer.timezone))

    return counted_stream(TRANSPORT, watch.changes(counted), encode, subscription, lambda: watch.end_reason)


EVENT_EMPTY = (
    "No delivery reports yet: they appear here when this event gets an announcement, a change or its cancellation."
)
EVERYONE_EMPTY = "No announcements to everyone yet."


@get(
    "/events/{event_id:int}/deliveries/stream",
    guards=[require_stream_user],
    opt={"transport": TRANSPORT, LONG_LIVED: True},
    include_in_schema=False,
)
async def event_reports_stream(request: Request[Any, Any, Any], event_id: RowId) -> EventStreamResponse:
    """The event's reports, live, for its organizer and admins (anyone else: 404)."""
    viewer = await signed_in_user(request)
    async with request.app.state.reader_sessionmaker() as session:  # not the request's: it would last as long
        await DeliveryReports(session).check_event(viewer, event_id)
    return watch_reports(request, viewer, lambda reports: reports.of_event(event_id, PAGE_REPORTS), EVENT_EMPTY)
