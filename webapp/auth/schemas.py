from __future__ import annotations

from typing import Any

import msgspec

from webapp.auth.models import User
from webapp.auth.services import SessionTokens


class RegisterRequest(msgspec.Struct):
    email: str
    password: str
    name: str
    timezone: str = "UTC"


class LoginRequest(msgspec.Struct):
    email: str
    password: str


class RefreshRequest(msgspec.Struct):
    refresh_token: str


class PasswordChange(msgspec.Struct):
    current_password: str
    new_password: str


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "timezone": user.timezone,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
    }


def session_json(tokens: SessionTokens) -> dict[str, Any]:
    """What an API client keeps of a session: the access token, how many seconds it lives, and
    the refresh token that buys the next one (each is good for one use)."""
    return {
        "token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "refresh_token": tokens.refresh_token,
    }
