"""Helpers that use the pages the way a browser does: GET a form, then POST it with its CSRF token."""

from __future__ import annotations

from typing import Any

from tests.conftest import DEFAULT_PASSWORD


async def csrf_token(client: Any, path: str = "/login") -> str:
    await client.get(path)
    token = client.cookies.get("tidings_csrf")
    assert token, "the CSRF cookie is set on the first page view"
    return str(token)


async def post_form(client: Any, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
    token = await csrf_token(client)
    return await client.post(path, data={**data, "_csrf_token": token}, **kwargs)


async def register_in_browser(client: Any, email: str, name: str = "Browser User", timezone: str = "UTC") -> Any:
    response = await post_form(
        client, "/register", {"email": email, "password": DEFAULT_PASSWORD, "name": name, "timezone": timezone}
    )
    assert response.status_code in (301, 302, 303), response.text
    return response
