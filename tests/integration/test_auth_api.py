from __future__ import annotations

from tests.api import bearer, register
from tests.conftest import DEFAULT_PASSWORD
from tests.services import clear_of_a_limit_window_edge


async def test_register_returns_user_and_a_token_that_authenticates(client):
    user, token = await register(client, name="Ada", email="Ada@Example.com", timezone="Europe/Berlin")
    assert user["email"] == "ada@example.com"
    assert user["timezone"] == "Europe/Berlin"
    assert user["role"] == "member"
    me = await client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


async def test_duplicate_email_is_409(client):
    await register(client, email="dup@example.com")
    response = await client.post(
        "/api/v1/auth/register", json={"email": "DUP@example.com", "password": DEFAULT_PASSWORD, "name": "Again"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"


async def test_invalid_registration_is_rejected_with_field_messages(client):
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "not-an-email", "password": "short", "name": "", "timezone": "Mars/Base"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"email", "password", "name", "timezone"}


async def test_missing_fields_and_wrong_types_are_422_and_bad_json_is_400(client):
    missing = await client.post("/api/v1/auth/register", json={"email": "x@example.com"})
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "validation_error"
    wrong_type = await client.post("/api/v1/auth/register", json={"email": 5, "password": [], "name": {}})
    assert wrong_type.status_code == 422
    bad_json = await client.post(
        "/api/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert "error" in bad_json.json()


async def test_login_with_right_and_wrong_password(client):
    await register(client, email="login@example.com")
    ok = await client.post("/api/v1/auth/login", json={"email": "login@example.com", "password": DEFAULT_PASSWORD})
    assert ok.status_code == 200
    assert ok.json()["user"]["email"] == "login@example.com"
    wrong = await client.post("/api/v1/auth/login", json={"email": "login@example.com", "password": "nope-nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    unknown = await client.post("/api/v1/auth/login", json={"email": "ghost@example.com", "password": "nope-nope"})
    assert unknown.status_code == 401


async def test_login_is_rate_limited_per_account(client):
    await clear_of_a_limit_window_edge()
    await register(client, email="target@example.com")
    for _ in range(5):
        response = await client.post(
            "/api/v1/auth/login", json={"email": "target@example.com", "password": "wrong-pass"}
        )
        assert response.status_code == 401
    blocked = await client.post(
        "/api/v1/auth/login", json={"email": "target@example.com", "password": DEFAULT_PASSWORD}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert blocked.json()["error"]["code"] == "rate_limited"


async def test_me_without_or_with_a_bad_token_is_401(client):
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer("garbage"))).status_code == 401
    assert (await client.get("/api/v1/me", headers={"Authorization": "Basic abc"})).status_code == 401
