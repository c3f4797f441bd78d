"""The operations page (admins only): the deployment's figures, live.

`GET /admin/ops` renders them; `GET /admin/ops/stream` sends the figures fragment again every
few seconds as an unnamed SSE message, which the page's htmx SSE extension swaps in. Both read
the samples every process records (webapp.ops) on the reader engine. Anyone but an admin gets a
404 (the page does not exist for them); an anonymous browser is sent to log in, like elsewhere.
The stream ends with its session (a `close` event, so the page does not reconnect), at its
token's expiry or after STREAM_MAX_LIFETIME_SECONDS (the page reconnects), and when the process
stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, get
from litestar.exceptions import PermissionDeniedException
from litestar.response import ServerSentEventMessage, Template

from webapp.db import utcnow
from webapp.http import DbSession, require_admin, session_of, signed_in_user
from webapp.long_lived import LONG_LIVED
from webapp.ops.figures import aggregate, read_since
from webapp.ops.views import OpsView, ops_view
from webapp.sse_response import EventStreamResponse
from webapp.web.announcements import announcement_panel
from webapp.web.sse import RETRY_MS, event_stream
from webapp.web.stream_access import origin_allowed, token_deadline

# New samples arrive every OPS_SAMPLE_SECONDS; the page is refreshed as often, at most this long apart.
REFRESH_MAX_SECONDS = 5.0


async def _view(request: Request[Any, Any, Any]) -> OpsView:
    state = request.app.state
    now = utcnow()
    async with state.reader_sessionmaker() as session:
        samples = await state.recent_samples.read(session, read_since(now))
    interval = state.settings.ops_sample_seconds
    # An hour of samples is some milliseconds of arithmetic: not on the event loop.
    figures = await asyncio.to_thread(aggregate, samples, now, interval)
    return ops_view(figures, interval)


@get("/admin/ops", guards=[require_admin], include_in_schema=False)
async def ops_page(request: Request[Any, Any, Any], db_session: DbSession) -> Template:
    # The page is also where an admin announces to everyone (the form posts to /admin/announcements).
    announcing = await announcement_panel(db_session, await signed_in_user(request))
    return Template("ops.html", context={"ops": await _view(request), **announcing})


@get("/admin/ops/stream", guards=[require_admin], opt={LONG_LIVED: True}, include_in_schema=False)
async def ops_stream(request: Request[Any, Any, Any]) -> EventStreamResponse:
    state = request.app.state
    settings = state.settings
    if not origin_allowed(request, settings):
        raise PermissionDeniedException("This origin may not open a stream.")
    fragment = request.app.template_engine.engine.get_template("_ops_figures.html")  # type: ignore[union-attr]
    refresh = min(settings.ops_sample_seconds, REFRESH_MAX_SECONDS)
    lifetime_ends = time.monotonic() + settings.stream_max_lifetime_seconds
    ends = min(lifetime_ends, token_deadline(request) or lifetime_ends)
    session = session_of(request)
    hub = state.doorbell.hub

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        stopped: list[str] = []  # why: session_ended, shutdown
        wake = asyncio.Event()

        def stop(reason: str) -> None:
            stopped.append(reason)
            wake.set()

        unwatch = hub.sessions.watch(session, lambda: stop("session_ended")) if session else None
        forget = hub.when_closing(lambda: stop("shutdown"))
        try:
            yield ServerSentEventMessage(data=None, comment="connected", retry=RETRY_MS)
            while True:
                yield ServerSentEventMessage(data=fragment.render(ops=await _view(request)))
                wait = min(refresh, ends - time.monotonic())
                if wait <= 0:
                    return  # the token expired or the lifetime is over: the page reconnects
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), wait)
                if "session_ended" in stopped:
                    yield ServerSentEventMessage(event="close", data="session_ended")
                    return
                if stopped:
                    return  # shutdown: the page reconnects, to another process or to this one once back
        finally:
            forget()
            if unwatch is not None:
                unwatch()

    return event_stream(messages())
