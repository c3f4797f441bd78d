"""Abuse limits against a real server: password guesses sent at once, the account throttle,
sign-ups, invitations and password changes, `/cable` sockets per user, and which
X-Forwarded-For is believed. The security server trusts 127.0.0.1 as a proxy, so each test
stands for clients at addresses of its own by sending X-Forwarded-For."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET
from tests.security.conftest import Accounts
from tests.services import REDIS_URL, LiveServer, clear_of_a_limit_window_edge, missing_service, redis_available
from webapp.auth.models import User
from webapp.groups.models import GroupMember, Invitation

LOGIN = "/api/v1/auth/login"
PER_ACCOUNT_AND_ADDRESS = 5  # Settings.login_attempts_per_window
PER_ADDRESS = 30  # Settings.login_attempts_per_address
PER_ACCOUNT_PER_HOUR = 100  # Settings.login_attempts_per_account_per_hour
REGISTRATIONS_PER_HOUR = 3  # the security server's REGISTRATIONS_PER_HOUR
INVITATIONS_PER_HOUR = 3  # the security server's INVITATIONS_PER_HOUR
_addresses = itertools.count(1)
_run = uuid.uuid4().int % 200 + 20  # windows outlive a run in a reused server: a part of our own


@pytest.fixture(autouse=True)
async def within_one_window() -> None:
    """Each test here counts up to a limit within one window: 15 s is ample for all but one,
    which asks for more itself."""
    await clear_of_a_limit_window_edge()


def fresh_address() -> str:
    n = next(_addresses)
    return f"10.{_run}.{n // 250}.{n % 250 + 1}"


def via(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def new_user(session: AsyncSession, hasher: PasswordHasher) -> str:
    email = f"abuse-{uuid.uuid4().hex[:12]}@example.com"
    password_hash = await asyncio.to_thread(hasher.hash, DEFAULT_PASSWORD)
    session.add(User(email=email, name="Abuse Target", password_hash=password_hash))
    await session.commit()
    return email


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert 0 < int(response.headers["retry-after"]) <= 3600


async def test_a_hundred_parallel_guesses_check_at_most_the_limit(
    server: LiveServer, session: AsyncSession, http: httpx.AsyncClient
) -> None:
    # The real (slow) argon2 parameters: the window in which guesses that were all let in
    # before any was counted would overlap is as wide as it is in production.
    email = await new_user(session, PasswordHasher())
    attacker = fresh_address()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        answers = await asyncio.gather(
            *(
                client.post(LOGIN, json={"email": email, "password": f"guess-{n}"}, headers=via(attacker))
                for n in range(100)
            )
        )
    statuses = Counter(response.status_code for response in answers)
    print(
        f"100 parallel wrong guesses: {statuses[401]} checked against the password (401), {statuses[429]} refused (429)"
    )
    # A 401 is a guess that reached argon2; a 429 was refused before it.
    assert statuses == {401: PER_ACCOUNT_AND_ADDRESS, 429: 100 - PER_ACCOUNT_AND_ADDRESS}
    assert_rate_limited(next(r for r in answers if r.status_code == 429))

    # The owner, elsewhere, is not locked out by it.
    owner = await http.post(LOGIN, json={"email": email, "password": DEFAULT_PASSWORD}, headers=via(fresh_address()))
    assert owner.status_code == 200, owner.text


async def test_guesses_spread_over_many_addresses_meet_the_slower_account_throttle(
    session: AsyncSession, http: httpx.AsyncClient
) -> None:
    email = await new_user(session, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    guesses = 0
    while guesses < PER_ACCOUNT_PER_HOUR:
        address = fresh_address()
        answers = await asyncio.gather(
            *(
                http.post(LOGIN, json={"email": email, "password": f"guess-{n}"}, headers=via(address))
                for n in range(PER_ACCOUNT_AND_ADDRESS)
            )
        )
        assert [a.status_code for a in answers] == [401] * PER_ACCOUNT_AND_ADDRESS
        guesses += PER_ACCOUNT_AND_ADDRESS
    # Every address used only its own five guesses, yet the account has had its hundred this hour.
    next_guess = await http.post(LOGIN, json={"email": email, "password": "one-more"}, headers=via(fresh_address()))
    assert_rate_limited(next_guess)


async def test_a_successful_login_does_not_use_up_the_limit(session: AsyncSession, http: httpx.AsyncClient) -> None:
    email = await new_user(session, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    address = fresh_address()
    for _ in range(PER_ACCOUNT_AND_ADDRESS * 2):
        ok = await http.post(LOGIN, json={"email": email, "password": DEFAULT_PASSWORD}, headers=via(address))
        assert ok.status_code == 200, ok.text
    for _ in range(PER_ACCOUNT_AND_ADDRESS):
        wrong = await http.post(LOGIN, json={"email": email, "password": "not-it-at-all"}, headers=via(address))
        assert wrong.status_code == 401
    blocked = await http.post(LOGIN, json={"email": email, "password": DEFAULT_PASSWORD}, headers=via(address))
    assert_rate_limited(blocked)


async def test_password_changes_share_the_limit_on_password_checks(accounts: Accounts, http: httpx.AsyncClient) -> None:
    account = await accounts.create()
    address = fresh_address()
    change = "/api/v1/auth/password"
    for _ in range(PER_ACCOUNT_AND_ADDRESS):
        wrong = await http.post(
            change,
            json={"current_password": "not-my-password", "new_password": "a brand new passphrase"},
            headers={**account.bearer, **via(address)},
        )
        assert wrong.status_code == 401, wrong.text
        assert wrong.json()["error"]["code"] == "invalid_credentials"
    right = await http.post(
        change,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new passphrase"},
        headers={**account.bearer, **via(address)},
    )
    assert_rate_limited(right)
    # Nothing changed: the old password still logs in.
    login = await http.post(
        LOGIN, json={"email": account.email, "password": DEFAULT_PASSWORD}, headers=via(fresh_address())
    )
    assert login.status_code == 200


async def test_sign_ups_are_limited_per_address(http: httpx.AsyncClient) -> None:
    address = fresh_address()

    async def sign_up(at: str) -> httpx.Response:
        body = {"email": f"signup-{uuid.uuid4().hex[:12]}@example.com", "password": DEFAULT_PASSWORD, "name": "New"}
        return await http.post("/api/v1/auth/register", json=body, headers=via(at))

    for _ in range(REGISTRATIONS_PER_HOUR):
        assert (await sign_up(address)).status_code == 201
    refused = await sign_up(address)
    assert_rate_limited(refused)
    assert (await sign_up(fresh_address())).status_code == 201  # another address is unaffected


async def test_invitations_are_limited_per_inviter(accounts: Accounts, http: httpx.AsyncClient) -> None:
    owner = await accounts.create()
    group = await http.post("/api/v1/groups", json={"name": "Limited"}, headers=owner.bearer)
    assert group.status_code == 201, group.text
    path = f"/api/v1/groups/{group.json()['id']}/invitations"
    for _ in range(INVITATIONS_PER_HOUR):
        invitee = await accounts.create()
        answer = await http.post(path, json={"email": invitee.email}, headers=owner.bearer)
        assert answer.status_code == 201, answer.text
    invitee = await accounts.create()
    refused = await http.post(path, json={"email": invitee.email}, headers=owner.bearer)
    assert_rate_limited(refused)


async def test_registering_a_taken_address_says_only_that_it_cannot_be_used(
    accounts: Accounts, http: httpx.AsyncClient
) -> None:
    account = await accounts.create()
    body = {"email": account.email, "password": DEFAULT_PASSWORD, "name": "Someone Else"}
    answer = await http.post("/api/v1/auth/register", json=body, headers=via(fresh_address()))
    assert answer.status_code == 409
    message = answer.json()["error"]["message"]
    assert message == "This email cannot be used to sign up. If it is yours, log in instead."


async def test_other_members_do_not_see_invitees_email_addresses(
    accounts: Accounts, http: httpx.AsyncClient, page_session: Any, session: AsyncSession
) -> None:
    owner, member, invitee = await accounts.create(), await accounts.create(), await accounts.create()
    group = (await http.post("/api/v1/groups", json={"name": "Private"}, headers=owner.bearer)).json()
    # Rows straight in: user ids restart between tests, and the owner's invitations this hour
    # may already be used up by another test's user of the same id.
    session.add(GroupMember(group_id=group["id"], user_id=member.id))
    session.add(Invitation(group_id=group["id"], inviter_id=owner.id, invitee_id=invitee.id))
    await session.commit()

    as_member = await page_session(member).get(f"/groups/{group['id']}")
    assert as_member.status_code == 200
    assert "Security Tester" in as_member.text  # the invitation is listed, by name
    assert invitee.email not in as_member.text
    as_owner = await page_session(owner).get(f"/groups/{group['id']}")
    assert invitee.email in as_owner.text  # the owner typed it


async def test_cable_sockets_per_user_are_capped(accounts: Accounts, open_cable: Any) -> None:
    account = await accounts.create()
    cap = 10  # STREAM_MAX_CONNECTIONS_PER_USER
    async with AsyncExitStack() as stack:
        opened = []
        for _ in range(cap):
            cable = await stack.enter_async_context(open_cable(account.token))
            await cable.wait_for(lambda f: f.get("type") == "welcome", "welcome")
            opened.append(cable)
        async with open_cable(account.token) as refused:
            frame = await refused.wait_for(lambda f: f.get("type") == "disconnect", "the refusal")
            assert frame == {"type": "disconnect", "reason": "too_many_connections", "reconnect": False}
            await refused.wait_closed()
            assert refused.ws.close_code == 1013
            assert not any(f.get("type") == "welcome" for f in refused.frames)
        await opened[0].close()  # a slot frees up once the server has seen that socket close
        deadline = time.monotonic() + 5
        while True:
            async with open_cable(account.token) as again:
                first = await again.wait_for(lambda f: f.get("type") in ("welcome", "disconnect"), "an answer")
            if first["type"] == "welcome":
                break
            assert time.monotonic() < deadline, "no slot came free after a socket closed"
            await asyncio.sleep(0.1)


# --- X-Forwarded-For from a peer that is not a configured proxy -----------------------------------


@pytest.fixture(scope="module")
def untrusting_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The same app with no TRUSTED_PROXIES: every peer is the client itself."""
    live = LiveServer(
        {"DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET, "LOG_LEVEL": "WARNING"},
        tmp_path_factory.mktemp("untrusting") / "server.log",
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


async def test_forwarded_for_from_an_untrusted_peer_cannot_dodge_the_limit(untrusting_server: LiveServer) -> None:
    """The per-address limit (30 failures across accounts): a client making up a new
    X-Forwarded-For for every guess is still one address, the peer's."""
    # 31 guesses, one after another, each checked by argon2: 7 s here, up to 20 s under CI's load.
    await clear_of_a_limit_window_edge(60)
    async with httpx.AsyncClient(base_url=untrusting_server.url, timeout=10) as client:

        async def guess() -> httpx.Response:
            body = {"email": f"nobody-{uuid.uuid4().hex[:12]}@example.com", "password": "nope-nope"}
            return await client.post(LOGIN, json=body, headers=via(fresh_address()))

        for _ in range(PER_ADDRESS):
            assert (await guess()).status_code == 401
        assert_rate_limited(await guess())


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    session: AsyncSession, http: httpx.AsyncClient
) -> None:
    email = await new_user(session, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    blocked, other = fresh_address(), fresh_address()
    for _ in range(PER_ACCOUNT_AND_ADDRESS):
        wrong = await http.post(LOGIN, json={"email": email, "password": "nope-nope"}, headers=via(blocked))
        assert wrong.status_code == 401
    assert_rate_limited(await http.post(LOGIN, json={"email": email, "password": "nope-nope"}, headers=via(blocked)))
    # What the client itself wrote to the left of the proxy's entry is not believed.
    spoof = {"X-Forwarded-For": f"{other}, {blocked}"}
    assert_rate_limited(await http.post(LOGIN, json={"email": email, "password": "nope-nope"}, headers=spoof))
    # Another client behind the same proxy has limits of its own.
    elsewhere = await http.post(LOGIN, json={"email": email, "password": "nope-nope"}, headers=via(other))
    assert elsewhere.status_code == 401


# --- the same limit counted in Redis (scaled mode) ------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A web process of a scaled deployment: its limits are counted in Redis."""
    if not redis_available():
        missing_service(f"Redis is not answering at {REDIS_URL}")
    live = LiveServer(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": TEST_SECRET,
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": REDIS_URL,
            "REDIS_NAMESPACE": f"tidings-test-{uuid.uuid4().hex[:8]}",
            "TRUSTED_PROXIES": "127.0.0.1",
        },
        tmp_path_factory.mktemp("redis-limits") / "server.log",
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


async def test_a_hundred_parallel_guesses_counted_in_redis_check_at_most_the_limit(
    redis_server: LiveServer, session: AsyncSession
) -> None:
    email = await new_user(session, PasswordHasher())
    attacker = fresh_address()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=redis_server.url, timeout=60, limits=limits) as client:
        answers = await asyncio.gather(
            *(
                client.post(LOGIN, json={"email": email, "password": f"guess-{n}"}, headers=via(attacker))
                for n in range(100)
            )
        )
        statuses = Counter(response.status_code for response in answers)
        print(f"Redis: 100 parallel wrong guesses: {statuses[401]} checked (401), {statuses[429]} refused (429)")
        assert statuses == {401: PER_ACCOUNT_AND_ADDRESS, 429: 100 - PER_ACCOUNT_AND_ADDRESS}
        owner = await client.post(
            LOGIN, json={"email": email, "password": DEFAULT_PASSWORD}, headers=via(fresh_address())
        )
        assert owner.status_code == 200, owner.text
