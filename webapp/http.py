"""What every controller shares: the DB session dependency, guards, and error answers.

JSON API errors are `{"error": {"code", "message"}}`; pages get a friendly page; an anonymous
browser is sent to the login page. No stack trace ever reaches a user.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from webapp import metrics
from webapp.auth.caller import Caller
from webapp.auth.models import User
from webapp.db import MAX_ROW_ID as MAX_ROW_ID  # re-exported: controllers and /cable bound ids with it
from webapp.db import is_retryable, is_unavailable
from webapp.errors import DomainError, RateLimited
from webapp.field_errors import validation_fields
from webapp.pagination import DEFAULT_PAGE_SIZE, MAX_CURSOR_LENGTH, MAX_PAGE_SIZE
from webapp.settings import Settings, TrustedProxies

log = logging.getLogger("tidings.http")
# Set on the ASGI scope when a request failed on a conflict worth running it again for.
RETRY_REQUESTED = "tidings.retry_requested"

DbSession = NamedDependency[AsyncSession]
# Ids in paths: anything outside the database's integer range is refused as invalid (422)
# instead of reaching the driver.
RowId = Annotated[int, PathParameter(ge=1, le=MAX_ROW_ID)]
# The paging parameters of the API's lists (see webapp.pagination).
PageLimit = Annotated[
    int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page (default {DEFAULT_PAGE_SIZE}).")
]
PageCursor = Annotated[
    str | None,
    QueryParameter(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the page before; omit for the first."),
]
AppSettings = NamedDependency[Settings]

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def provide_db_session(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: one transaction, committed when the handler has returned and
    rolled back when it raised. Services never commit; a handler that answers an error itself
    rolls back first. Reads (GET) run on the reader engine and never take SQLite's write lock;
    a GET that writes says so with `opt={"writes": True}`."""
    state = request.app.state
    reads_only = request.method in SAFE_METHODS and not request.route_handler.opt.get("writes")
    sessionmaker = state.reader_sessionmaker if reads_only else state.sessionmaker
    async with sessionmaker() as session:
        yield session
        await session.commit()


def provide_settings(request: Request[Any, Any, Any]) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


# Guards are coroutine functions: Litestar runs a plain-function guard in a worker thread, a
# thread hop on every request for an attribute check.
async def require_user(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if connection.user is None:
        raise NotAuthorizedException("Log in to continue.")


async def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Signed out: the login page, as everywhere; signed in but not an admin: no such page."""
    if not (await signed_in_user(connection)).is_admin:
        raise NotFoundException("No such page.")


def current_user(request: Request[Any, Any, Any]) -> Caller:
    """Who is calling (the id; `signed_in_user` reads the row where more is needed)."""
    user = request.user
    if user is None:  # the guard runs first; this keeps the type honest
        raise NotAuthorizedException("Log in to continue.")
    return user  # type: ignore[no-any-return]


async def signed_in_user(connection: ASGIConnection[Any, Any, Any, Any]) -> User:
    """The caller's row, where a request shows or checks more of the user than the id: read once
    per request, in a reader session (never the request's writing one: a write transaction opened
    that early would be held across whatever slow work the handler does first), and kept in the
    scope for the rest of the request. A token whose user has no row (a database reset under a
    kept cookie) is signed out."""
    caller = connection.scope.get("user")
    if isinstance(caller, User):
        return caller
    if caller is None:
        raise NotAuthorizedException("Log in to continue.")
    async with connection.app.state.reader_sessionmaker() as reader:
        user: User | None = await reader.get(User, caller.id)
    connection.scope["user"] = user
    if user is None:
        raise NotAuthorizedException("Log in to continue.")
    return user


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The session (refresh-token family) the connection's credential belongs to, as the auth
    middleware found it; None for anonymous connections."""
    session = getattr(connection.scope.get("auth"), "session", None)
    return session if isinstance(session, str) else None


def client_address(request: Request[Any, Any, Any]) -> str:
    """The address rate limits key on: the peer, or, when the peer is a configured proxy
    (TRUSTED_PROXIES), the address that proxy saw."""
    peer = request.client.host if request.client else "unknown"
    trusted = request.app.state.settings.trusted_proxies
    return forwarded_client(peer, request.headers.getall("x-forwarded-for", []), trusted)


def forwarded_client(peer: str, forwarded_for: list[str], trusted: TrustedProxies) -> str:
    """Walks X-Forwarded-For from the right (the hop nearest to us) past trusted proxies: the
    first address not among them is the client. Entries to its left are whatever the client
    wrote and are never believed; without a trusted peer the header is ignored altogether."""
    address = peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    while address in trusted and hops:
        hop = hops.pop()
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # garbage from a hop we trust to append, not to write: stop at what we know
    return address


def from_this_site(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser says the request was started by one of our own pages, or by the user
    (address bar, bookmark): a GET that another site can trigger (a link, an image) must not change
    state. Fetch metadata (Sec-Fetch-Site) where the browser sends it; otherwise a Referer of our own
    host, which our pages send (Referrer-Policy: same-origin). Without either, the answer is no."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")  # "same-site" is a sibling host, not us
    referer = request.headers.get("referer")
    return referer is not None and urlsplit(referer).netloc == request.headers.get("host")


def is_api(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith("/api/")


def error_json(status: int, code: str, message: str, **extra: Any) -> Response[Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({k: v for k, v in extra.items() if v})
    return Response({"error": body}, status_code=status)


def error_page(request: Request[Any, Any, Any], status: int, message: str) -> Response[Any]:
    if request.headers.get("hx-request"):
        # An htmx request swaps a fragment into the page: leave the page alone and say why.
        trigger = json.dumps({"tidings:error": {"message": message}})
        return Response(None, status_code=status, headers={"HX-Reswap": "none", "HX-Trigger": trigger})
    return Template("error.html", context={"status": status, "message": message}, status_code=status)


def answer_options(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """OPTIONS lists every method of the path. Litestar 2's own answer lists only those of the
    handler registered first when a path's handlers are registered one by one (litestar#4169,
    fixed in Litestar 3), and clients (and Schemathesis) take `Allow` at its word."""
    if request.method != "OPTIONS":
        return None
    methods = {"OPTIONS"}
    for path in request.route_handler.paths:
        methods.update(request.app.route_handler_method_map.get(path, {}))
    return Response(None, status_code=204, headers={"Allow": ", ".join(sorted(methods))})


def retry_headers(exc: DomainError) -> dict[str, str] | None:
    """Retry-After for a refusal by a rate limit, also when a page answers it with its own form."""
    return {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None


def handle_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    headers = retry_headers(exc)
    if is_api(request):
        response = error_json(exc.status_code, exc.code, exc.message, fields=exc.fields)
    else:
        response = error_page(request, exc.status_code, exc.message)
    if headers:
        response.headers.update(headers)
    return response


# What Litestar raises (as a 500) when the client hangs up before its request body has arrived.
CLIENT_LEFT = "client disconnected prematurely"
CLIENT_CLOSED_REQUEST = 499  # the status proxies log for this; nobody is left to read it


def client_left(request: Request[Any, Any, Any]) -> Response[Any]:
    """A tab that navigates away while its form is sent is the client's doing, not a fault."""
    log.warning("the client left before its request body arrived: %s %s", request.method, request.url.path)
    return Response(None, status_code=CLIENT_CLOSED_REQUEST)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if exc.detail == CLIENT_LEFT:
        return client_left(request)
    if status >= 500:
        return handle_unexpected(request, exc)
    code = STATUS_CODES.get(status, "error")
    message = exc.detail if isinstance(exc.detail, str) else "The request could not be processed."
    fields: dict[str, str] = {}
    if isinstance(exc, ValidationException):
        # One status per kind of error: a value that fails validation is a 422 wherever it was
        # checked (here, or by a service raising ValidationFailed); a body that is not JSON at
        # all is a 400 bad_request.
        fields = validation_fields(exc)
        if fields:
            status, code = 422, "validation_error"
            message = "; ".join(f"{name}: {text}" for name, text in fields.items())
        elif "JSON" in str(exc.detail) or "decode" in str(exc.detail).lower():
            status, code, message = 400, "bad_request", "The request body is not valid JSON."
        else:
            status, code, message = 422, "validation_error", "The request is invalid."
    if is_api(request) or request.url.path.endswith("/stream"):
        # (an EventSource cannot follow a redirect to a page)
        return _with_headers(error_json(status, code, message, fields=fields), exc.headers)
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = f"/login?next={quote(target, safe='')}"
        if request.headers.get("hx-request"):
            return Response(None, status_code=204, headers={"HX-Redirect": location})
        return Redirect(location)
    if status == 403 and "CSRF" in message:
        message = "Your form expired. Reload the page and try again."
    return _with_headers(error_page(request, status, message), exc.headers)


def _with_headers(response: Response[Any], headers: dict[str, str] | None) -> Response[Any]:
    """The exception's own headers (a 405's Allow, a 401's WWW-Authenticate) stay on the answer."""
    if headers:
        response.headers.update(headers)
    return response


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # an error raised while a dependency cleaned up (e.g. the commit)
    if is_retryable(exc) or is_unavailable(exc):
        return handle_database_busy(request, exc)
    metrics.UNHANDLED_EXCEPTIONS.inc()
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    if is_api(request):
        return error_json(500, "internal_error", "Something went wrong on our side.")
    return error_page(request, 500, "Something went wrong on our side. Please try again.")


RETRY_AFTER_SECONDS = 2


def handle_database_busy(request: Request[Any, Any, Any], exc: BaseException) -> Response[Any]:
    """A conflict the unit of work may retry (see webapp.uow), or a database that is down or hung:
    503 with Retry-After, never 500."""
    if is_retryable(exc):
        request.scope[RETRY_REQUESTED] = True  # type: ignore[literal-required]
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    message = "The service is busy. Please try again in a moment."
    if is_api(request) or request.url.path.endswith("/stream"):
        response = error_json(503, "service_unavailable", message)
    else:
        response = error_page(request, 503, message)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: handle_domain_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
