"""API sessions: login answers a rotating refresh token and `expires_in`; refresh rotates it,
reuse of a rotated one ends the whole session; logout ends the session at once (its access
tokens stop working immediately, not at their expiry)."""

from __future__ import annotations

import logging
from datetime import timedelta

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from tests.api import bearer, register
from tests.conftest import DEFAULT_PASSWORD
from tests.integration.pages import register_in_browser
from tidings.app import create_app
from webapp.auth.models import RefreshToken
from webapp.db import utcnow

ACCESS_TOKEN_SECONDS = 15 * 60


async def login(client, email: str) -> dict:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


async def refresh(client, refresh_token: str):
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


async def me_status(client, token: str) -> int:
    return (await client.get("/api/v1/me", headers=bearer(token))).status_code


def assert_refused(response, code: str = "invalid_refresh_token") -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


async def test_login_and_registration_answer_a_refresh_token_and_expires_in(client):
    registered = await client.post(
        "/api/v1/auth/register", json={"email": "flow@example.com", "password": DEFAULT_PASSWORD, "name": "Flow"}
    )
    assert registered.status_code == 201
    for body in (registered.json(), await login(client, "flow@example.com")):
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == ACCESS_TOKEN_SECONDS
        assert isinstance(body["refresh_token"], str) and len(body["refresh_token"]) >= 32
        assert await me_status(client, body["token"]) == 200


async def test_refresh_rotates_the_refresh_token_and_the_old_one_is_spent(client, session):
    await register(client, email="rotate@example.com")
    first = await login(client, "rotate@example.com")
    response = await refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["expires_in"] == ACCESS_TOKEN_SECONDS and second["token_type"] == "Bearer"
    assert second["refresh_token"] != first["refresh_token"] and second["token"] != first["token"]
    assert await me_status(client, second["token"]) == 200
    third = await refresh(client, second["refresh_token"])
    assert third.status_code == 200
    used = list(await session.scalars(select(RefreshToken).where(RefreshToken.used_at.is_not(None))))
    assert len(used) == 2  # each link of the chain was used once


async def test_reusing_a_rotated_refresh_token_ends_the_whole_session_at_once(client):
    await register(client, email="reuse@example.com")
    other = await login(client, "reuse@example.com")  # another device: a session of its own
    first = await login(client, "reuse@example.com")
    rotated = (await refresh(client, first["refresh_token"])).json()
    assert await me_status(client, rotated["token"]) == 200

    assert_refused(await refresh(client, first["refresh_token"]))  # the old one again: it leaked

    # The whole family is over: the newest refresh token and every access token of it.
    assert_refused(await refresh(client, rotated["refresh_token"]))
    assert await me_status(client, rotated["token"]) == 401
    assert await me_status(client, first["token"]) == 401
    # The other device is untouched.
    assert await me_status(client, other["token"]) == 200
    assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_logout_ends_the_session_and_its_access_token_at_once(client):
    await register(client, email="logout@example.com")
    other = await login(client, "logout@example.com")
    mine = await login(client, "logout@example.com")
    response = await client.post("/api/v1/auth/logout", headers=bearer(mine["token"]))
    assert response.status_code == 204, response.text
    assert await me_status(client, mine["token"]) == 401  # not 15 minutes later
    assert (await client.get("/api/v1/notifications", headers=bearer(mine["token"]))).status_code == 401
    assert_refused(await refresh(client, mine["refresh_token"]))
    again = await client.post("/api/v1/auth/logout", headers=bearer(mine["token"]))
    assert again.status_code == 401 and again.json()["error"]["code"] == "unauthorized"
    assert await me_status(client, other["token"]) == 200


async def test_an_ended_session_stays_ended_for_a_process_started_afterwards(settings):
    """A web process that was not running when the session ended learns it from the database."""
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8000") as first:
        _, _ = await register(first, email="restart@example.com")
        tokens = await login(first, "restart@example.com")
        assert (await first.post("/api/v1/auth/logout", headers=bearer(tokens["token"]))).status_code == 204
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8000") as second:
        assert await me_status(second, tokens["token"]) == 401


async def test_unknown_expired_and_garbage_refresh_tokens_are_401_and_never_logged(client, session, caplog):
    caplog.set_level(logging.DEBUG)
    await register(client, email="bad@example.com")
    tokens = await login(client, "bad@example.com")
    await session.execute(update(RefreshToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    await session.commit()
    for value in (tokens["refresh_token"], "x" * 43, "garbage", "", "\x00", "é" * 5000):
        assert_refused(await refresh(client, value))
    for body in ({}, {"refresh_token": 5}, {"refresh_token": None}, []):
        response = await client.post("/api/v1/auth/refresh", json=body)
        assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error", response.text
    not_json = await client.post("/api/v1/auth/refresh", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    # An expired refresh token is refused without ending anything else of the account.
    assert await me_status(client, tokens["token"]) == 200
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert tokens["refresh_token"] not in logged and tokens["token"] not in logged


async def test_logout_without_a_token_is_401_with_the_error_shape(client):
    response = await client.post("/api/v1/auth/logout")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    garbage = await client.post("/api/v1/auth/logout", headers=bearer("garbage"))
    assert garbage.status_code == 401


async def test_browser_logout_ends_the_access_cookie_at_once(client):
    """A copy of the access cookie taken before logout (another tab, a thief) stops working."""
    await register_in_browser(client, "copy@example.com")
    access = client.cookies["tidings_access"]
    assert (await client.post("/logout", data={"_csrf_token": client.cookies["tidings_csrf"]})).status_code in (
        302,
        303,
    )
    client.cookies.clear()
    client.cookies.set("tidings_access", access)
    assert (await client.get("/profile")).status_code in (302, 303)
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(access))).status_code == 401


async def test_browser_refresh_token_reuse_ends_the_live_access_cookie(client, session):
    await register_in_browser(client, "thief@example.com")
    stolen = client.cookies["tidings_refresh"]
    client.cookies.delete("tidings_access")
    assert (await client.get("/profile")).status_code == 200  # the owner's browser rotates
    live_access = client.cookies["tidings_access"]
    await session.execute(
        update(RefreshToken).values(used_at=utcnow() - timedelta(minutes=5)).where(RefreshToken.used_at.is_not(None))
    )
    await session.commit()
    client.cookies.clear()
    client.cookies.set("tidings_refresh", stolen)
    assert (await client.get("/profile")).status_code in (302, 303)  # the replay is refused
    client.cookies.clear()
    client.cookies.set("tidings_access", live_access)
    assert (await client.get("/profile")).status_code in (302, 303)  # and the owner's access is over too


async def test_a_refresh_racing_a_logout_leaves_no_live_token_of_the_session(in_process_server, session):
    """Refresh and logout of one session sent at once, on a real server (requests overlap): however
    they interleave, the session ends whole — a refresh token the rotation issued is revoked too,
    and neither it nor the access token it came with works afterwards."""
    import asyncio

    import httpx

    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as http:
        _, registered = await register(http, email="race@example.com")
        assert (await http.post("/api/v1/auth/logout", headers=bearer(registered))).status_code == 204
        for _ in range(15):
            tokens = await login(http, "race@example.com")
            refreshed, logout = await asyncio.gather(
                refresh(http, tokens["refresh_token"]),
                http.post("/api/v1/auth/logout", headers=bearer(tokens["token"])),
            )
            assert logout.status_code == 204, logout.text
            assert refreshed.status_code in (200, 401), refreshed.text
            if refreshed.status_code == 200:
                assert_refused(await refresh(http, refreshed.json()["refresh_token"]))
                assert await me_status(http, refreshed.json()["token"]) == 401
        session.expire_all()
        live = await session.scalar(
            select(func.count()).select_from(RefreshToken).where(RefreshToken.revoked_at.is_(None))
        )
        assert live == 0


async def test_a_password_change_ends_every_other_session_of_the_account(client):
    """Whoever else holds a session (a stolen token, a forgotten laptop) is out at once; the
    session that changed the password stays signed in."""
    await register(client, email="change@example.com")
    here = await login(client, "change@example.com")
    elsewhere = await login(client, "change@example.com")
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a fresh passphrase 42"},
        headers=bearer(here["token"]),
    )
    assert changed.status_code == 204, changed.text
    assert await me_status(client, elsewhere["token"]) == 401
    assert_refused(await refresh(client, elsewhere["refresh_token"]))
    assert await me_status(client, here["token"]) == 200
    assert (await refresh(client, here["refresh_token"])).status_code == 200
