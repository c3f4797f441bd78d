from __future__ import annotations

from typing import TypedDict

import msgspec

from webapp.auth.models import User
from webapp.openapi import Timestamp


class RegisterRequest(msgspec.Struct):
    email: str
    password: str
    name: str
    timezone: str = "UTC"


class LoginRequest(msgspec.Struct):
    email: str
    password: str


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


class SessionJson(TypedDict):
    """A signed-in API client: send `token` as `Authorization: Bearer <token>`."""

    user: UserJson
    token: str


def user_json(user: User) -> UserJson:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "timezone": user.timezone,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
    }
