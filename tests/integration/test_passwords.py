"""Password rules (at least 10 characters, not among the 10,000 most common) on sign-up and on
password change, and the password change itself."""

from __future__ import annotations

import pytest

from tests.api import bearer, register
from tests.conftest import DEFAULT_PASSWORD
from tests.integration.pages import post_form, register_in_browser
from tests.services import clear_of_a_limit_window_edge

TOO_SHORT = "Use at least 10 characters."


def sign_up_body(password: str) -> dict[str, str]:
    return {"email": "new@example.com", "password": password, "name": "New Person"}


async def test_sign_up_needs_at_least_ten_characters(client):
    short = await client.post("/api/v1/auth/register", json=sign_up_body("nine-char"))
    assert short.status_code == 422
    assert short.json()["error"]["fields"] == {"password": TOO_SHORT}
    enough = await client.post("/api/v1/auth/register", json=sign_up_body("ten-chars!"))
    assert enough.status_code == 201, enough.text


@pytest.mark.parametrize("common", ["qwertyuiop", "1234567890", "Password123"])
async def test_sign_up_refuses_the_most_common_passwords(client, common):
    answer = await client.post("/api/v1/auth/register", json=sign_up_body(common))
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"]["password"].startswith("This is one of the most common passwords")
    assert (
        await client.post("/api/v1/auth/login", json={"email": "new@example.com", "password": common})
    ).status_code == 401


async def test_the_sign_up_page_says_why_a_common_password_is_refused(client):
    page = await post_form(client, "/register", {**sign_up_body("1234567890"), "timezone": "UTC"})
    assert page.status_code == 422
    assert "This is one of the most common passwords" in page.text


async def test_a_password_change_needs_the_current_password_and_a_good_new_one(client):
    user, token = await register(client, email="changer@example.com")
    change = "/api/v1/auth/password"

    wrong = await client.post(
        change,
        json={"current_password": "not-my-password", "new_password": "a new long passphrase"},
        headers=bearer(token),
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_credentials"

    for weak, message in (("short", TOO_SHORT), ("qwertyuiop", "This is one of the most common passwords")):
        refused = await client.post(
            change, json={"current_password": DEFAULT_PASSWORD, "new_password": weak}, headers=bearer(token)
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["fields"]["new_password"].startswith(message)

    anonymous = await client.post(change, json={"current_password": DEFAULT_PASSWORD, "new_password": "x" * 12})
    assert anonymous.status_code == 401

    # Nothing so far changed anything.
    login = {"email": "changer@example.com", "password": DEFAULT_PASSWORD}
    assert (await client.post("/api/v1/auth/login", json=login)).status_code == 200

    done = await client.post(
        change,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a new long passphrase"},
        headers=bearer(token),
    )
    assert done.status_code == 204, done.text
    assert (await client.post("/api/v1/auth/login", json=login)).status_code == 401
    new_login = {"email": "changer@example.com", "password": "a new long passphrase"}
    assert (await client.post("/api/v1/auth/login", json=new_login)).status_code == 200


async def test_the_profile_page_changes_the_password_with_messages_on_its_fields(client):
    await register_in_browser(client, "pager@example.com")
    page = await client.get("/profile")
    assert 'action="/profile/password"' in page.text

    wrong = await post_form(
        client, "/profile/password", {"current_password": "not-it-at-all", "new_password": "a fine passphrase"}
    )
    assert wrong.status_code == 401 and "Your current password is wrong." in wrong.text
    weak = await post_form(
        client, "/profile/password", {"current_password": DEFAULT_PASSWORD, "new_password": "qwertyuiop"}
    )
    assert weak.status_code == 422 and "This is one of the most common passwords" in weak.text
    done = await post_form(
        client, "/profile/password", {"current_password": DEFAULT_PASSWORD, "new_password": "a fine passphrase"}
    )
    assert done.status_code == 200 and "Password changed." in done.text
    old = await post_form(client, "/login", {"email": "pager@example.com", "password": DEFAULT_PASSWORD})
    assert old.status_code == 401
    new = await post_form(client, "/login", {"email": "pager@example.com", "password": "a fine passphrase"})
    assert new.status_code in (302, 303), new.text


async def test_a_refused_login_page_says_when_to_try_again(client):
    await clear_of_a_limit_window_edge()
    await register(client, email="paged@example.com")
    for _ in range(5):
        wrong = await post_form(client, "/login", {"email": "paged@example.com", "password": "not-it-at-all"})
        assert wrong.status_code == 401
    refused = await post_form(client, "/login", {"email": "paged@example.com", "password": DEFAULT_PASSWORD})
    assert refused.status_code == 429 and "Too many failed attempts" in refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 300
