"""What every controller shares: the DB session dependency, guards, and error answers.

JSON API errors are `{"error": {"code", "message"}}`; pages get a friendly page; an anonymous
browser is sent to the login page. No stack trace ever reaches a user.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import PathParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.db import session_scope
from webapp.errors import DomainError, RateLimited
from webapp.settings import Settings

log = logging.getLogger("tidings.http")

DbSession = NamedDependency[AsyncSession]
# Ids in paths: anything outside the database's integer range is refused as bad input (400)
# instead of reaching the driver.
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, PathParameter(ge=1, le=MAX_ROW_ID)]
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


async def provide_db_session(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    async for session in session_scope(request.app.state.sessionmaker):
        yield session


def provide_settings(request: Request[Any, Any, Any]) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def require_user(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if connection.user is None:
        raise NotAuthorizedException("Log in to continue.")


def current_user(request: Request[Any, Any, Any]) -> User:
    user = request.user
    if user is None:  # the guard runs first; this keeps the type honest
        raise NotAuthorizedException("Log in to continue.")
    return user  # type: ignore[no-any-return]


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


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


def handle_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    if is_api(request):
        response = error_json(exc.status_code, exc.code, exc.message, fields=exc.fields)
    else:
        response = error_page(request, exc.status_code, exc.message)
    if headers:
        response.headers.update(headers)
    return response


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return handle_unexpected(request, exc)
    code = STATUS_CODES.get(status, "error")
    message = exc.detail if isinstance(exc.detail, str) else "The request could not be processed."
    if isinstance(exc, ValidationException):
        code = "validation_error"
        message = _validation_message(exc)
    if is_api(request) or request.url.path.endswith("/stream"):
        return error_json(status, code, message)  # an EventSource cannot follow a redirect to a page
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = f"/login?next={quote(target, safe='')}"
        if request.headers.get("hx-request"):
            return Response(None, status_code=204, headers={"HX-Redirect": location})
        return Redirect(location)
    if status == 403 and "CSRF" in message:
        message = "Your form expired. Reload the page and try again."
    return error_page(request, status, message)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    if is_api(request):
        return error_json(500, "internal_error", "Something went wrong on our side.")
    return error_page(request, 500, "Something went wrong on our side. Please try again.")


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in extra:
        if isinstance(item, dict):
            key = item.get("key") or ""
            parts.append(f"{key}: {item.get('message', 'invalid')}" if key else str(item.get("message", "invalid")))
    if parts:
        return "Invalid request: " + "; ".join(parts)
    if "JSON" in str(exc.detail) or "decode" in str(exc.detail).lower():
        return "The request body is not valid JSON."
    return "Invalid request."


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: handle_domain_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
