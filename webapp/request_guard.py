"""The checks every HTTP request passes before anything reads it: no NUL character in its path,
query string or form body, a JSON body nested no deeper than the API ever needs, and a body
within the size limit (Litestar's `request_max_body_size` answers 413 while the body is read).

One place for every route (API, pages, static files) rather than a check per field: a NUL is
never meaningful in this application's text, PostgreSQL cannot store it, and the operating
system refuses it in file names. JSON bodies are the exception: there every string field is a
`webapp.validation.Text`, whose pattern refuses a NUL while decoding and says so in the OpenAPI
schema, and fields the API does not know are ignored, whatever they hold. A NUL in a query or
form field is a value that fails validation, answered like every other one (422
validation_error naming the field); a NUL in the path or a body nested too deep is a malformed
request (400). Both are raised here so the app's exception handlers write them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, ValidationException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from webapp.probes import PROBE
from webapp.validation import MAX_JSON_DEPTH, json_depth

NUL_MESSAGE = "Text may not contain NUL characters."
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestGuardMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    exclude_opt_key = PROBE  # a probe reads nothing of the request

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if "\x00" in scope["path"]:
            raise ClientException(NUL_MESSAGE)
        _check_fields(scope.get("query_string", b""))
        if scope.get("method") in BODY_METHODS:
            # The body is read once and kept on the scope: the handler's request reads the same bytes.
            request: Request[Any, Any, Any] = Request(scope, receive)
            _check_body(request.headers.get("content-type", ""), await request.body())
        await next_app(scope, receive, send)


def _check_fields(encoded: bytes) -> None:
    """A URL-encoded query string or form body: every field holding a NUL is named."""
    if not _has_encoded_nul(encoded):
        return
    pairs = parse_qsl(encoded.decode("latin-1"), keep_blank_values=True)
    names = sorted({name.replace("\x00", "?") or "?" for name, value in pairs if "\x00" in name + value})
    raise ValidationException(
        NUL_MESSAGE, extra=[{"key": name, "message": "must not contain NUL characters"} for name in names or ["?"]]
    )


def _has_encoded_nul(raw: bytes) -> bool:
    """In a URL-encoded string (query string, form body) a NUL can only be `%00` or a raw NUL."""
    return b"%00" in raw or b"\x00" in raw


def _check_body(content_type: str, body: bytes) -> None:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        _check_fields(body)
    elif media_type.endswith("json"):
        if json_depth(body) > MAX_JSON_DEPTH:
            raise ClientException(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.")
    elif b"\x00" in body:  # multipart and anything else: this application accepts no binary uploads
        raise ClientException(NUL_MESSAGE)
