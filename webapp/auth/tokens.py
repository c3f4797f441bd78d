"""Access tokens (short-lived JWTs) and opaque refresh tokens.

Every access token names its session (`sid`, the refresh-token family it was issued for), so a
session that ends can be refused at once without a database read (see webapp.realtime.sessions).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from webapp.db import utcnow
from webapp.validation import is_row_id

ALGORITHM = "HS256"
AUDIENCE = "tidings"
ISSUER = "tidings"


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    expires_at: datetime
    jti: str
    session: str


def issue_access_token(user_id: int, secret_key: str, lifetime: timedelta, session: str) -> str:
    now = utcnow()
    claims = {
        "sub": str(user_id),
        "sid": session,
        "iat": now,
        "exp": now + lifetime,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret_key, algorithm=ALGORITHM)


def decode_access_token(token: str, secret_key: str) -> AccessClaims | None:
    """The claims of a valid, unexpired token, or None for anything else."""
    try:
        claims = _verified(token, secret_key)
    except InvalidToken:
        return None
    if claims.expires_at <= utcnow():  # expired at `exp`, as PyJWT judges it
        return None
    return claims


class InvalidToken(Exception):
    """Raised, not returned, so that the cache below keeps only tokens that verified: a refusal
    (a token from a clock a little ahead, garbage of any size) is judged afresh every time."""


# Every API request and stream opening checks a token, and a client sends the same one for its
# 15 minutes: the signature and claims of a token are checked once (70 µs, a tenth of a cached
# read's CPU); its expiry at every use. Only our own signed tokens are kept, at most this many
# (under 2 MB).
VERIFIED_TOKENS = 4096


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(token: str, secret_key: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "jti", "sid"]},
        )
        # Signed by us does not mean well-formed (a key shared with another tool, an old format):
        # every claim is checked for what it is used as, and anything else is no token at all.
        user_id = int(claims["sub"])
        session = claims["sid"]
        expires_at = datetime.fromtimestamp(claims["exp"], tz=UTC)
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, OSError) as exc:
        raise InvalidToken from exc
    if not is_row_id(user_id) or not isinstance(claims["jti"], str):
        raise InvalidToken
    if not isinstance(session, str) or not session:
        raise InvalidToken
    return AccessClaims(user_id=user_id, expires_at=expires_at, jti=claims["jti"], session=session)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
