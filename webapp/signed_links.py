"""Signed, expiring links for email and push: one action without a login step.

A link is bound to one user and one purpose: opening one notification (which marks it read), or
unsubscribing from one type's email. Anything further needs a session. The token is a JWT with its
own audience, so an access token can never pass for a link, nor a link for an access token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import jwt

from webapp.db import utcnow
from webapp.validation import is_row_id

ALGORITHM = "HS256"
AUDIENCE = "tidings:link"
ISSUER = "tidings"
Purpose = Literal["open", "unsubscribe"]
OPEN_LINK_LIFETIME = timedelta(days=7)
UNSUBSCRIBE_LINK_LIFETIME = timedelta(days=60)


@dataclass(frozen=True, slots=True)
class LinkClaims:
    user_id: int
    purpose: Purpose
    # "open": the notification's id; "unsubscribe": the notification type (or "digest").
    target: str


def sign_link(user_id: int, purpose: Purpose, target: str | int, secret_key: str, lifetime: timedelta) -> str:
    now = utcnow()
    claims = {
        "sub": str(user_id),
        "pur": purpose,
        "tgt": str(target),
        "iat": now,
        "exp": now + lifetime,
        "aud": AUDIENCE,
        "iss": ISSUER,
    }
    return jwt.encode(claims, secret_key, algorithm=ALGORITHM)


def open_link_token(user_id: int, notification_id: int, secret_key: str) -> str:
    return sign_link(user_id, "open", notification_id, secret_key, OPEN_LINK_LIFETIME)


def unsubscribe_token(user_id: int, type: str, secret_key: str) -> str:
    return sign_link(user_id, "unsubscribe", type, secret_key, UNSUBSCRIBE_LINK_LIFETIME)


def read_link(token: str, purpose: Purpose, secret_key: str) -> LinkClaims | None:
    """The claims of a valid, unexpired link for `purpose`, or None for anything else."""
    try:
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "pur", "tgt"]},
        )
        user_id = int(claims["sub"])
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, OSError):
        return None
    if not is_row_id(user_id) or claims["pur"] != purpose or not isinstance(claims["tgt"], str):
        return None
    return LinkClaims(user_id=user_id, purpose=purpose, target=claims["tgt"])
