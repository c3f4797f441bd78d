"""Flash messages: one line, shown once, on the page a form's redirect lands on.

A form that changes something answers with a redirect (POST-redirect-GET) carrying the message in
a short-lived cookie; the next full page of that user shows it (base.html, `role=status`) and
the same answer deletes the cookie, so a reload or the back button does not show it again. The
cookie is signed with the SECRET_KEY and names its user: nobody can make the site show words it
did not write, and a message never reaches another account signed in on the same browser.
(Litestar's FlashPlugin needs a session middleware, which this app, signed in by JWT cookies,
does not have.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any, Literal

from litestar import Request
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.response import Redirect
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from webapp.long_lived import LONG_LIVED
from webapp.probes import is_probe

FLASH_COOKIE = "tidings_flash"
FLASH_MAX_AGE_SECONDS = 60  # the redirect is followed at once; an unfollowed one goes stale
TAKEN = "tidings.flash_taken"  # in the scope's state: a list, non-empty once the page took the flash


def flash_redirect(
    request: Request[Any, Any, Any], path: str, message: str, status_code: Literal[302, 303] = 302
) -> Redirect:
    """A redirect to `path` whose page says `message` once."""
    settings = request.app.state.settings
    user = request.scope.get("user")
    value = _sign(settings.secret_key, {"u": user.id if user is not None else None, "m": message})
    cookie = Cookie(
        key=FLASH_COOKIE,
        value=value,
        max_age=FLASH_MAX_AGE_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.production,
    )
    return Redirect(path, status_code=status_code, cookies=[cookie])


def take_flash(request: Request[Any, Any, Any]) -> str:
    """The message waiting for this page, or "". Called once per full page (base.html); the
    answer then deletes the cookie, whether its message was shown or refused."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return ""
    taken = request.scope.get("state", {}).get(TAKEN)
    if taken is not None:
        taken.append(True)
    data = _verify(request.app.state.settings.secret_key, raw)
    user = request.scope.get("user")
    if data is None or data.get("u") != (user.id if user is not None else None):
        return ""
    message = data.get("m")
    return message if isinstance(message, str) else ""


class FlashMiddleware(ASGIMiddleware):
    """The answer to a page that took the flash deletes its cookie. It stands outside the retry
    of conflicting transactions, which runs the handler on a copy of the scope's state: the list
    it puts there is shared by every attempt."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = LONG_LIVED
    should_bypass_for_scope = staticmethod(is_probe)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        taken: list[bool] = []
        scope.setdefault("state", {})[TAKEN] = taken

        async def send_deleting_a_taken_flash(message: Message) -> None:
            if message["type"] == "http.response.start" and taken:
                MutableScopeHeaders.from_message(message).add("set-cookie", _DELETION)
            await send(message)

        await next_app(scope, receive, send_deleting_a_taken_flash)


_DELETION = Cookie(key=FLASH_COOKIE, value="", max_age=0, path="/", httponly=True, samesite="lax").to_header(header="")


def _sign(secret: str, data: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{payload}.{_mac(secret, payload)}"


def _verify(secret: str, raw: str) -> dict[str, Any] | None:
    payload, _, mac = raw.partition(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _mac(secret: str, payload: str) -> str:
    # A key of its own, derived from the SECRET_KEY, so this MAC can never stand in for a token.
    key = hashlib.sha256(b"tidings flash\0" + secret.encode()).digest()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
