"""Security headers on every answer the app sends: pages, the JSON API, static files, streams, and the
errors the router answers before any middleware runs (404, 405).

They are added by a `before_send` hook because Litestar runs app-level hooks of that kind for every
message it sends, while middleware and `response_headers` only see requests that matched a route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.types import Message, Scope

# No inline script or style anywhere: every script is a file under /static (htmx evaluates no
# code for the attributes the templates use), so 'self' is all a page needs. `data:` images are
# the icons inside the vendored Swagger UI stylesheet.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",  # frame-ancestors for browsers that predate it
    "x-content-type-options": "nosniff",
    # Full URLs (with notification and booking ids) never leave the site; our own pages still
    # send one, which is how /notifications/{id}/open knows a click came from here.
    "referrer-policy": "same-origin",
}
# Production is served over HTTPS (behind a proxy that terminates TLS); development is plain HTTP
# on localhost, where a pinned HTTPS-only policy would lock the browser out of it.
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"


def served_headers(production: bool) -> dict[str, str]:
    headers = dict(SECURITY_HEADERS)
    if production:
        headers["strict-transport-security"] = STRICT_TRANSPORT_SECURITY
    return headers


def security_headers(production: bool) -> Callable[[Message, Scope], Awaitable[None]]:
    """A `before_send` hook that adds the headers to every HTTP answer that does not set its own.
    It works on the message's raw header list: every answer passes here, and a lookup through
    Litestar's header view decodes the whole list once per name (a fifth of a probe's CPU)."""
    encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in served_headers(production).items()]

    async def add_security_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        sent = message.get("headers", [])
        present = {name.lower() for name, _ in sent}
        missing = [header for header in encoded if header[0] not in present]
        if missing:
            message["headers"] = [*sent, *missing]

    return add_security_headers
