from __future__ import annotations

from typing import TypedDict

import msgspec

from webapp.auth.models import User
from webapp.auth.services import SessionTokens
from webapp.openapi import Timestamp
from webapp.validation import Text


class RegisterRequest(msgspec.Struct):
    email: Text
    password: Text
    name: Text
    timezone: Text = "UTC"


class LoginRequest(msgspec.Struct):
    email: Text
    password: Text


class RefreshRequest(msgspec.Struct):
    refresh_token: str


class PasswordChange(msgspec.Struct):
    current_password: Text
    new_password: Text


class UserRef(TypedDict):
    """Another person, as others may see them."""

    id: int
    name: str


class UserJson(TypedDict):
    id: int
    email: str
    name: str
    timezone: str
    role: str
    created_at: Timestamp


class TokensJson(TypedDict):
    """Send `token` as `Authorization: Bearer <token>` until it expires (`expires_in` seconds),
    then trade `refresh_token` (good for one use) for new ones at /api/v1/auth/refresh."""

    token: str
    token_type: str
    expires_in: int
    refresh_token: str


class SessionJson(TokensJson):
    """A signed-in API client: who it is, and its tokens."""

    user: UserJson


def user_json(user: User) -> UserJson:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "timezone": user.timezone,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
    }


def tokens_json(tokens: SessionTokens) -> TokensJson:
    return {
        "token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "refresh_token": tokens.refresh_token,
    }


def session_json(user: User, tokens: SessionTokens) -> SessionJson:
    return {"user": user_json(user), **tokens_json(tokens)}
