from __future__ import annotations

from typing import Any

import msgspec

from webapp.auth.models import User


class RegisterRequest(msgspec.Struct):
    email: str
    password: str
    name: str
    timezone: str = "UTC"


class LoginRequest(msgspec.Struct):
    email: str
    password: str


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
