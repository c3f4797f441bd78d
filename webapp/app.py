"""The Litestar application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, get
from litestar.config.csrf import CSRFConfig
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from redis.asyncio import Redis

from webapp.auth.controllers import AuthApi, AuthPages
from webapp.auth.middleware import SessionAuthMiddleware, SessionCSRFMiddleware
from webapp.auth.services import LoginGuard
from webapp.bookings.controllers import BookingApi, BookingPages
from webapp.db import create_engine, create_sessionmaker
from webapp.events.controllers import EventApi, EventPages
from webapp.groups.controllers import GroupApi, GroupPages
from webapp.http import EXCEPTION_HANDLERS, provide_db_session, provide_settings
from webapp.payments.gateway import TestPaymentGateway
from webapp.ratelimit import Counter, MemoryCounter, RateLimiter, RedisCounter
from webapp.rendering import template_config
from webapp.reviews.controllers import ReviewApi, ReviewPages
from webapp.settings import Settings, get_settings

LOGIN_FAILURES_PER_ADDRESS = 30


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        counter: Counter = RedisCounter(redis) if redis else MemoryCounter()
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.redis = redis
        app.state.payment_gateway = TestPaymentGateway()
        app.state.login_guard = LoginGuard(
            per_account=RateLimiter(counter, settings.login_attempts_per_window, settings.login_window_seconds),
            per_address=RateLimiter(counter, LOGIN_FAILURES_PER_ADDRESS, settings.login_window_seconds),
        )
        try:
            yield
        finally:
            if redis:
                await redis.aclose()
            await engine.dispose()

    csrf = CSRFConfig(
        secret=settings.secret_key,
        cookie_name="tidings_csrf",
        header_name="x-csrftoken",
        cookie_secure=settings.production,
        cookie_samesite="lax",
    )
    return Litestar(
        route_handlers=[
            healthz,
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
            create_static_files_router(path="/static", directories=[settings.static_dir], include_in_schema=False),
        ],
        dependencies={
            "db_session": Provide(provide_db_session),
            "settings": Provide(provide_settings, sync_to_thread=False),
        },
        middleware=[SessionAuthMiddleware(), DefineMiddleware(SessionCSRFMiddleware, config=csrf)],
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=template_config(settings.templates_dir),
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Tidings API", version="1.0.0", path="/schema", render_plugins=[SwaggerRenderPlugin()]
        ),
        debug=False,
    )


def app_from_env() -> Litestar:
    return create_app()
