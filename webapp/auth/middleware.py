"""Who is calling: a Bearer token (API) or the session cookies (browser).

The browser's access token lives 15 minutes. When it has expired, the refresh cookie is rotated
here, transparently, and the new cookies ride on whatever response the request produces.
Anonymous requests pass through with `user = None`; route guards decide what needs a user.
An access token whose session has ended (logout, a reused refresh token) is refused at once:
the check is a lookup in this process's list of ended sessions, not a database read. A valid one
reads nothing either: `scope["user"]` is then the `TokenHolder` it names, and the user's row is
read only where it is needed (webapp.auth.caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.datastructures.headers import Headers
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from webapp._cookies import parse_cookies
from webapp.auth.caller import Caller, TokenHolder
from webapp.auth.services import SessionService, SessionTokens
from webapp.auth.tokens import AccessClaims, decode_access_token
from webapp.logs import bind_user
from webapp.long_lived import LONG_LIVED
from webapp.probes import PROBE, is_probe
from webapp.settings import Settings

ACCESS_COOKIE = "tidings_access"
REFRESH_COOKIE = "tidings_refresh"


@dataclass(frozen=True)
class AuthInfo:
    via: str | None  # "bearer", "cookie", "query" or None
    expires_at: datetime | None = None
    session: str | None = None  # the session (refresh-token family) the credential belongs to


def session_cookies(settings: Settings, tokens: SessionTokens | None) -> list[Cookie]:
    """Cookies that store a new session, or (tokens=None) delete it."""
    common: dict[str, Any] = {"path": "/", "httponly": True, "samesite": "lax", "secure": settings.production}
    if tokens is None:
        return [Cookie(key=name, value="", max_age=0, **common) for name in (ACCESS_COOKIE, REFRESH_COOKIE)]
    return [
        Cookie(key=ACCESS_COOKIE, value=tokens.access_token, max_age=tokens.expires_in, **common),
        Cookie(key=REFRESH_COOKIE, value=tokens.refresh_token, max_age=settings.refresh_token_days * 86400, **common),
    ]


class SessionAuthMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)
    exclude_opt_key = PROBE  # anonymous by definition: its cookies are not looked at

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        state = scope["litestar_app"].state
        settings: Settings = state.settings
        headers = Headers.from_scope(scope)
        cookies = parse_cookies(headers.get("cookie", ""))
        user: Caller | None = None
        info = AuthInfo(via=None)
        set_cookies: list[Cookie] = []

        def live_claims(token: str) -> AccessClaims | None:
            claims = decode_access_token(token, settings.secret_key)
            return None if claims is None or state.doorbell.hub.sessions.is_ended(claims.session) else claims

        authorization = headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            claims = live_claims(token.strip()) if scheme.lower() == "bearer" else None
            if claims:
                user = TokenHolder(claims.user_id)
                info = AuthInfo(via="bearer", expires_at=claims.expires_at, session=claims.session)
        elif scope["type"] == ScopeType.WEBSOCKET and (query_token := _query_token(scope)):
            # ActionCable-style clients authenticate the handshake with ?token=<jwt>; the query
            # string never reaches a log (see webapp.logging).
            claims = live_claims(query_token)
            if claims:
                user = TokenHolder(claims.user_id)
                info = AuthInfo(via="query", expires_at=claims.expires_at, session=claims.session)
        else:
            claims = live_claims(cookies.get(ACCESS_COOKIE, ""))
            if claims:
                user = TokenHolder(claims.user_id)
                info = AuthInfo(via="cookie", expires_at=claims.expires_at, session=claims.session)
            refresh = cookies.get(REFRESH_COOKIE)
            if user is None and refresh:
                async with state.sessionmaker() as session:
                    sessions = SessionService(session, settings)
                    if scope["type"] == ScopeType.WEBSOCKET:
                        # A handshake cannot set cookies: a valid refresh token admits it unrotated.
                        holder = await sessions.holder_of(refresh)
                        if holder:
                            user, family = holder
                            info = AuthInfo(via="cookie", expires_at=sessions.access_expiry(), session=family)
                    else:
                        refreshed = await sessions.rotate(refresh, grace=True)
                        await session.commit()  # this middleware is the rotation's unit of work
                        if refreshed:
                            user = refreshed.user
                            if refreshed.tokens is not None:
                                set_cookies = session_cookies(settings, refreshed.tokens)
                            info = AuthInfo(
                                via="cookie", expires_at=sessions.access_expiry(), session=refreshed.session
                            )
                        else:
                            set_cookies = session_cookies(settings, None)

        scope["user"] = user
        scope["auth"] = info
        bind_user(user.id if user else None)
        if set_cookies:
            send = _adding_cookies(send, set_cookies)
        await next_app(scope, receive, send)


def _query_token(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _adding_cookies(send: Send, cookies: list[Cookie]) -> Send:
    async def send_with_cookies(message: Message) -> None:
        if message["type"] == "http.response.start":
            response_headers = MutableScopeHeaders.from_message(message)
            for cookie in cookies:
                response_headers.add("set-cookie", cookie.to_header(header=""))
        await send(message)

    return send_with_cookies


class SessionCSRFMiddleware(CSRFMiddleware):
    """CSRF protection for cookie-authenticated state changes only.

    A request carrying an Authorization header, or an API request without session cookies, cannot
    ride on a victim's browser session, so the double-submit check does not apply to it.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            if scope["route_handler"].opt.get(LONG_LIVED) or is_probe(scope):  # GETs with nothing to protect
                await self.app(scope, receive, send)
                return
            headers = Headers.from_scope(scope)
            cookies = parse_cookies(headers.get("cookie", ""))
            has_session_cookie = ACCESS_COOKIE in cookies or REFRESH_COOKIE in cookies
            if "authorization" in headers or (scope["path"].startswith("/api/") and not has_session_cookie):
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
