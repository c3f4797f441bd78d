from __future__ import annotations

from typing import Any

import msgspec

from webapp.auth.models import User
from webapp.validation import Text


class RegisterRequest(msgspec.Struct):
    email: Text
    password: Text
    name: Text
    timezone: Text = "UTC"


class LoginRequest(msgspec.Struct):
    email: Text
    password: Text


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "timezone": user.timezone,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
    }
