"""Browser sessions: cookies, CSRF, transparent refresh with rotation, revocation on logout."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET
from tests.integration.pages import csrf_token, post_form, register_in_browser
from tidings.app import create_app
from webapp.auth.models import RefreshToken, User
from webapp.auth.tokens import issue_access_token
from webapp.db import utcnow
from webapp.settings import load_settings


def set_cookie_headers(response) -> list[str]:
    return response.headers.get_list("set-cookie")


async def test_registering_in_the_browser_sets_httponly_lax_session_cookies(client):
    response = await register_in_browser(client, "cookie@example.com")
    cookies = {c.split("=", 1)[0]: c for c in set_cookie_headers(response)}
    for name in ("tidings_access", "tidings_refresh"):
        assert "HttpOnly" in cookies[name]
        assert "SameSite=lax" in cookies[name] or "SameSite=Lax" in cookies[name]
        assert "Secure" not in cookies[name]  # development serves plain http
    page = await client.get("/bookings")
    assert page.status_code == 200
    assert "My bookings" in page.text


async def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(client, session):
    await csrf_token(client)
    response = await client.post(
        "/register", data={"email": "nocsrf@example.com", "password": DEFAULT_PASSWORD, "name": "X", "timezone": "UTC"}
    )
    assert response.status_code == 403
    assert "Traceback" not in response.text
    assert await session.scalar(select(User).where(User.email == "nocsrf@example.com")) is None


async def test_an_api_post_riding_on_session_cookies_needs_the_csrf_header(client):
    await register_in_browser(client, "csrfapi@example.com")
    payload = {"name": "Cookie group"}
    refused = await client.post("/api/v1/groups", json=payload)
    assert refused.status_code == 403
    accepted = await client.post(
        "/api/v1/groups", json=payload, headers={"x-csrftoken": client.cookies["tidings_csrf"]}
    )
    assert accepted.status_code == 201


async def test_anonymous_pages_redirect_to_login_and_back(client):
    response = await client.get("/bookings?x=1")
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/login?next=%2Fbookings%3Fx%3D1"
    htmx = await client.get("/bookings", headers={"HX-Request": "true"})
    assert htmx.headers["hx-redirect"].startswith("/login?next=")
    await register_in_browser(client, "back@example.com")
    await client.post("/logout", data={"_csrf_token": client.cookies["tidings_csrf"]})
    login = await post_form(
        client, "/login", {"email": "back@example.com", "password": DEFAULT_PASSWORD, "next": "/bookings"}
    )
    assert login.headers["location"] == "/bookings"
    offsite = await post_form(
        client, "/login", {"email": "back@example.com", "password": DEFAULT_PASSWORD, "next": "//evil.example/"}
    )
    assert offsite.headers["location"] == "/"


async def test_wrong_password_in_the_login_form_shows_an_error(client):
    await register_in_browser(client, "typo@example.com")
    client.cookies.delete("tidings_access")
    client.cookies.delete("tidings_refresh")
    response = await post_form(client, "/login", {"email": "typo@example.com", "password": "wrong-password"})
    assert response.status_code == 401
    assert "Wrong email or password." in response.text


async def test_an_expired_access_cookie_is_refreshed_transparently_with_rotation(client, session):
    await register_in_browser(client, "refresh@example.com")
    old_refresh = client.cookies["tidings_refresh"]
    client.cookies.delete("tidings_access")  # the browser dropped it after 15 minutes
    response = await client.get("/profile")
    assert response.status_code == 200
    new_cookies = {c.split("=", 1)[0]: c for c in set_cookie_headers(response)}
    assert "tidings_access" in new_cookies and "tidings_refresh" in new_cookies
    assert client.cookies["tidings_refresh"] != old_refresh
    rows = list(await session.scalars(select(RefreshToken).order_by(RefreshToken.id)))
    assert len(rows) == 2 and rows[0].used_at is not None and rows[1].used_at is None


async def test_replaying_a_rotated_refresh_token_revokes_the_whole_session(client, session):
    await register_in_browser(client, "stolen@example.com")
    stolen = client.cookies["tidings_refresh"]
    client.cookies.delete("tidings_access")
    assert (await client.get("/profile")).status_code == 200  # legitimate rotation
    # Long after the rotation, someone presents the old token.
    await session.execute(
        update(RefreshToken).values(used_at=utcnow() - timedelta(minutes=5)).where(RefreshToken.used_at.is_not(None))
    )
    await session.commit()
    client.cookies.clear()
    client.cookies.set("tidings_refresh", stolen)
    assert (await client.get("/profile")).status_code in (302, 303)
    session.expire_all()
    rows = list(await session.scalars(select(RefreshToken)))
    assert rows and all(row.revoked_at is not None for row in rows)


async def test_logout_revokes_the_refresh_token_and_clears_cookies(client, session):
    await register_in_browser(client, "bye@example.com")
    refresh = client.cookies["tidings_refresh"]
    response = await client.post("/logout", data={"_csrf_token": client.cookies["tidings_csrf"]})
    assert response.status_code in (302, 303)
    assert any(c.startswith("tidings_refresh=") and "Max-Age=0" in c for c in set_cookie_headers(response))
    client.cookies.clear()
    client.cookies.set("tidings_refresh", refresh)
    assert (await client.get("/profile")).status_code in (302, 303)
    row = await session.scalar(select(RefreshToken))
    assert row is not None and row.revoked_at is not None


async def test_a_bearer_token_and_an_expired_one(client):
    await register_in_browser(client, "bearer@example.com")
    me = (await client.get("/api/v1/me")).json()
    expired = issue_access_token(me["id"], TEST_SECRET, timedelta(seconds=-5), "test-session")
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401  # an explicit Bearer token is never replaced by cookies


async def test_production_sets_secure_cookies(database_url):
    from litestar.testing import AsyncTestClient

    settings = load_settings(
        {"TIDINGS_ENV": "production", "SECRET_KEY": TEST_SECRET, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    )
    async with AsyncTestClient(create_app(settings), base_url="https://127.0.0.1") as client:
        client.follow_redirects = False
        response = await register_in_browser(client, "secure@example.com")
        for header in set_cookie_headers(response):
            assert "Secure" in header, header
