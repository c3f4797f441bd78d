"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from litestar import Litestar, Request, Response
from litestar.config.csrf import CSRFConfig
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Message, Receive, Scope, Send
from redis.asyncio import Redis

from webapp import metrics, openapi
from webapp.auth.middleware import SessionAuthMiddleware, SessionCSRFMiddleware
from webapp.auth.models import User
from webapp.auth.services import LoginGuard
from webapp.auth.sessions import EndedSessionsSync
from webapp.bookings.payment_gateway import TestPaymentGateway
from webapp.db import create_engine, create_reader_engine, create_sessionmaker
from webapp.flash import FlashMiddleware
from webapp.headers import security_headers
from webapp.http import EXCEPTION_HANDLERS, answer_options, provide_db_session, provide_settings
from webapp.logs import bind_user, configure_logging, new_request_id, request_id
from webapp.mail.transport import log_email_mode
from webapp.methods import as_get, list_head_with_get, without_body
from webapp.notifications.delivered import DeliveredFlush, DeliveredLive
from webapp.notifications.resync import StreamResync
from webapp.notifications.services import NotificationService
from webapp.notifications.stream import STREAM_READS_AT_ONCE, StreamConfig
from webapp.ops.sampling import OpsSampler
from webapp.ops.store import RecentSamples
from webapp.outbox.services import hand_overs_finished
from webapp.ratelimit import Counter, MemoryCounter, RateLimiter, RedisCounter
from webapp.realtime.doorbell import Doorbell, Hub, LocalDoorbell, RedisDoorbell, set_doorbell
from webapp.realtime.ended_sessions import EndedSessions
from webapp.rendering import template_config
from webapp.request_guard import RequestGuardMiddleware
from webapp.retry import RetryConflictsMiddleware
from webapp.schema_ui import VendoredSwaggerUI
from webapp.settings import Settings, get_settings
from webapp.sse_response import BODY_SEND
from webapp.validation import MAX_REQUEST_BODY_BYTES
from webapp.web.announcements import AdminAnnouncementPages, announcement_reports_stream
from webapp.web.auth import AuthApi, AuthPages
from webapp.web.bookings import BookingApi, BookingPages
from webapp.web.cable import cable
from webapp.web.deliveries import DeliveryApi, event_reports_stream
from webapp.web.events import EventApi, EventPages
from webapp.web.groups import GroupApi, GroupPages
from webapp.web.health import live, ready
from webapp.web.mail import DevMailPages, open_link
from webapp.web.metrics import metrics_endpoint
from webapp.web.notifications import NotificationApi, NotificationPages
from webapp.web.ops import ops_page, ops_stream
from webapp.web.preferences import PreferenceApi, PreferencePages, UnsubscribePages
from webapp.web.push import PushApi, PushPages, service_worker
from webapp.web.reviews import ReviewApi, ReviewPages
from webapp.web.sse import api_stream, page_stream
from webapp.web.stream_access import SocketSlots


async def before_request(request: Request[Any, Any, Any]) -> Response[Any] | None:
    if (options := answer_options(request)) is not None:
        return options
    await load_inbox_state(request)
    return None


async def load_inbox_state(request: Request[Any, Any, Any]) -> None:
    """Pages show the signed-in user's name and the bell with the unread count and the seq they
    were rendered at: both are read here, in one session. A user without a row is signed out."""
    path = request.scope["path"]  # not request.url, which parses the whole URL on every request
    caller = request.scope.get("user")  # unset on paths no route matched
    if caller is None or path.startswith(("/api/", "/static/")) or path.endswith("/stream") or path == "/sw.js":
        return
    async with request.app.state.reader_sessionmaker() as session:
        user = caller if isinstance(caller, User) else await session.get(User, caller.id)
        request.scope["user"] = user
        if user is not None:
            request.state.inbox = await NotificationService(session).state(user.id)


class Tidings(Litestar):
    """The app, answering HEAD wherever it answers GET (webapp.methods). This has to happen before
    routing, which refuses a HEAD to a GET route with 405 before any middleware runs. A stream's
    body skips the wrappers of `send`, which look at the head only (webapp.sse_response)."""

    async def __call__(
        self, scope: Scope | LifeSpanScope, receive: Receive | LifeSpanReceive, send: Send | LifeSpanSend
    ) -> None:
        if scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
            await super().__call__(scope, receive, send)
            return
        rid = bind_request(cast("Scope", scope))
        if scope["type"] != ScopeType.HTTP:
            await super().__call__(scope, receive, send)
            return
        body_send = cast("Send", send)
        if scope.get("method") == "HEAD":
            scope = as_get(scope)  # type: ignore[arg-type]
            body_send = without_body(body_send)
        scope[BODY_SEND] = body_send  # type: ignore[literal-required]
        send = with_request_id(body_send, rid)
        await super().__call__(scope, receive, counted_responses(scope, send))  # type: ignore[arg-type]


def bind_request(scope: Scope) -> str:
    """Every line logged for this request or socket carries its id (webapp.logs)."""
    sent = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
    rid = new_request_id(sent.decode("latin-1"))
    request_id.set(rid)
    bind_user(None)
    return rid


def with_request_id(send: Send, rid: str) -> Send:
    """Sends the request id back (X-Request-ID), so a client or proxy can quote it."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
        await send(message)

    return sending


def counted_responses(scope: Scope, send: Send) -> Send:
    """Counts each response by route template and status class as it starts (a stream counts when
    it opens). Routing sets the template on the scope before anything is sent; a path no route
    matched is `unmatched`, so raw paths never become labels."""

    async def counting(message: Message) -> None:
        if message["type"] == "http.response.start":
            route = scope.get("path_template") or "unmatched"
            metrics.count_response(route, message["status"])
        await send(message)

    return counting


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    if not logging.getLogger().handlers:
        configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        timeouts = settings.database_timeouts
        engine = create_engine(settings.database_url, timeouts=timeouts)
        reader_engine = create_reader_engine(engine, settings.database_url, timeouts)
        redis = Redis.from_url(settings.redis_url, **settings.redis_options) if settings.redis_url else None
        counter: Counter = RedisCounter(redis, settings.redis_namespace) if redis else MemoryCounter()
        app.state.settings = settings
        log_email_mode(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.reader_sessionmaker = create_sessionmaker(reader_engine)
        app.state.redis = redis
        app.state.payment_gateway = TestPaymentGateway()
        app.state.login_guard = LoginGuard(
            per_account_address=RateLimiter(counter, settings.login_attempts_per_window, settings.login_window_seconds),
            per_address=RateLimiter(counter, settings.login_attempts_per_address, settings.login_window_seconds),
            per_account=RateLimiter(counter, settings.login_attempts_per_account_per_hour, 3600),
        )
        app.state.registration_limiter = RateLimiter(counter, settings.registrations_per_hour, 3600)
        app.state.invitation_limiter = RateLimiter(counter, settings.invitations_per_hour, 3600)
        app.state.announcement_limiter = RateLimiter(counter, settings.announcements_per_hour, 3600)
        app.state.stream_config = StreamConfig(
            heartbeat_seconds=settings.stream_heartbeat_seconds,
            max_lifetime_seconds=settings.stream_max_lifetime_seconds,
            replay_limit=settings.stream_replay_limit,
            queue_size=settings.stream_queue_size,
            max_connections_per_user=settings.stream_max_connections_per_user,
        )
        app.state.stream_reads = asyncio.Semaphore(STREAM_READS_AT_ONCE)
        hub = Hub(sessions=EndedSessions(settings.access_token_seconds))
        doorbell: Doorbell = RedisDoorbell.from_settings(settings, hub) if settings.redis_url else LocalDoorbell(hub)
        app.state.doorbell = doorbell
        app.state.cable_sockets = SocketSlots()
        set_doorbell(doorbell)
        await doorbell.start()
        # Ended sessions reach this process by the doorbell; the database covers lost rings and
        # sessions that ended before this process started.
        ended_sessions = EndedSessionsSync(
            hub.sessions, app.state.reader_sessionmaker, settings.access_token_seconds, settings.stream_resync_seconds
        )
        await ended_sessions.start()
        # Rings can be lost (a crash after commit, Redis down): streams still catch up from the
        # database within STREAM_RESYNC_SECONDS.
        resync = StreamResync(doorbell.hub, app.state.reader_sessionmaker, settings.stream_resync_seconds)
        await resync.start()
        # "Delivered live" is collected by the streams in memory and written in batches.
        app.state.delivered_live = DeliveredLive()
        delivered = DeliveredFlush(app.state.delivered_live, app.state.sessionmaker, settings.delivery_flush_seconds)
        await delivered.start()
        # Importing jobs sets the broker and lets the outbox hand rows to it. With Redis, separate
        # `dramatiq jobs` processes run them; without, the worker and scheduler live in here.
        import jobs  # noqa: F401
        from jobs.embedded import EmbeddedJobs
        from jobs.ops import broker_backlog

        embedded = (
            None
            if settings.redis_url
            else EmbeddedJobs(settings, app.state.sessionmaker, payment_gateway=app.state.payment_gateway)
        )
        if embedded:
            embedded.start()
        # This process's figures for the operations page, with the deployment-wide ones (outbox
        # lag, the job queues) that only the web app and the broker together can read.
        ops_sampler = OpsSampler(
            "web",
            app.state.sessionmaker,
            settings.ops_sample_seconds,
            reader_sessionmaker=app.state.reader_sessionmaker,
            broker_backlog=broker_backlog,
        )
        app.state.ops_sampler = ops_sampler
        await ops_sampler.start()
        app.state.recent_samples = RecentSamples()  # what the page read last time, so it reads only what is new
        try:
            yield
        finally:
            # What this lifespan started, not what app.state holds now: tests run a second
            # lifespan of the same app (a second test client), which replaces the state's objects.
            await ops_sampler.stop()
            if embedded:
                await asyncio.get_running_loop().run_in_executor(None, embedded.stop)
                await embedded.finish_ticks()
            # The hand-overs this loop's commits started write to the engine closed below.
            await hand_overs_finished()
            await resync.stop()
            await ended_sessions.stop()
            await doorbell.stop()
            set_doorbell(None)
            await delivered.stop()  # and writes what the streams collected last
            if redis:
                await redis.aclose()
            await engine.dispose()
            await reader_engine.dispose()

    csrf = CSRFConfig(
        secret=settings.secret_key,
        cookie_name="tidings_csrf",
        header_name="x-csrftoken",
        cookie_secure=settings.production,
        cookie_samesite="lax",
    )
    return Tidings(
        route_handlers=[
            live,
            ready,
            metrics_endpoint,
            AuthPages,
            AuthApi,
            EventPages,
            EventApi,
            BookingPages,
            BookingApi,
            GroupPages,
            GroupApi,
            ReviewPages,
            ReviewApi,
            NotificationPages,
            NotificationApi,
            PreferencePages,
            PreferenceApi,
            UnsubscribePages,
            open_link,
            DevMailPages,
            ops_page,
            ops_stream,
            DeliveryApi,
            PushApi,
            PushPages,
            service_worker,
            AdminAnnouncementPages,
            page_stream,
            api_stream,
            event_reports_stream,
            announcement_reports_stream,
            cable,
            create_static_files_router(path="/static", directories=[settings.static_dir], include_in_schema=False),
        ],
        dependencies={
            "db_session": Provide(provide_db_session),
            "settings": Provide(provide_settings, sync_to_thread=False),
        },
        middleware=[
            RequestGuardMiddleware(),  # bad bytes are refused before anything reads them
            SessionAuthMiddleware(),
            DefineMiddleware(SessionCSRFMiddleware, config=csrf),
            FlashMiddleware(),  # outside the retries, which copy the scope's state
            RetryConflictsMiddleware,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_REQUEST_BODY_BYTES,
        before_request=before_request,
        before_send=[security_headers(settings.production), list_head_with_get],
        template_config=template_config(settings.templates_dir),
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Tidings API",
            version="1.0.0",
            path="/schema",
            render_plugins=[VendoredSwaggerUI()],
            components=openapi.COMPONENTS,  # the Bearer scheme; operations refer to it (webapp.openapi)
        ),
        debug=False,
    )


def app_from_env() -> Litestar:
    return create_app()
