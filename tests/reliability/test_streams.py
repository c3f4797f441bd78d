"""The JSON notification stream against a real server: replay, reset, admission, expiry, heartbeat.

Server: heartbeat 1 s, replay limit 400, at most 3 streams per user (see conftest.SERVERS).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import jwt

from tests.conftest import TEST_SECRET
from tests.reliability.conftest import (
    CONNECTION_CAP,
    HEARTBEAT_SECONDS,
    REPLAY_LIMIT,
    Account,
    add_notifications,
    announce,
    register,
    register_admin,
    seqs,
)
from tests.reliability.sse import (
    API_STREAM,
    PAGE_STREAM,
    Closed,
    Comment,
    Event,
    EventStream,
    open_stream,
)
from tests.services import LiveServer
from webapp.auth.tokens import issue_access_token
from webapp.notifications.services import UNREAD_COUNT_LIMIT

WAIT = 10.0  # generous bound for anything that should take milliseconds (the machine is shared)


def kinds(events: list[Event]) -> list[str]:
    return [e.event for e in events]


async def assert_live(http: httpx.AsyncClient, stream: EventStream, admin, expected_seq: int) -> None:
    """An announcement now arrives on the stream as the next seq, and nothing else follows it."""
    title = f"live {expected_seq}"
    await announce(http, admin, title)
    [live] = await stream.notifications(1, WAIT)
    assert (live.id, live.json()["seq"], live.json()["title"]) == (str(expected_seq), expected_seq, title)
    after = await stream.until_heartbeat(WAIT)
    assert "new_notification" not in kinds(after), f"more than the one live item: {after}"


# ---- 1. replay -----------------------------------------------------------------------------


async def test_replay_after_last_event_id_header_sends_only_newer_items_in_order_then_live(http, session):
    admin = await register_admin(http, session)
    member = await register(http)
    await add_notifications(session, member.id, 10)

    async with open_stream(http, member.token, last_event_id=4) as stream:
        assert stream.status == 200, stream.body
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        replayed = await stream.notifications(6, WAIT)
        assert seqs(replayed) == [5, 6, 7, 8, 9, 10]
        assert [e.json()["seq"] for e in replayed] == [5, 6, 7, 8, 9, 10]  # the id is the seq
        assert [e.json()["title"] for e in replayed] == [f"stored {i}" for i in range(4, 10)]
        opening = await stream.until_heartbeat(WAIT)
        assert kinds(opening) == ["notification_count"]  # no second copy, no older item
        assert opening[0].json()["seq"] == 10 and opening[0].json()["unread_count"] == 10
        await assert_live(http, stream, admin, 11)


async def test_replay_from_last_event_id_query_on_first_connect_then_live(http, session):
    admin = await register_admin(http, session)
    member = await register(http)
    await add_notifications(session, member.id, 10)

    async with open_stream(http, member.token, query_last_event_id=7) as stream:
        assert stream.status == 200, stream.body
        assert seqs(await stream.notifications(3, WAIT)) == [8, 9, 10]
        assert "new_notification" not in kinds(await stream.until_heartbeat(WAIT))
        await assert_live(http, stream, admin, 11)

    # On a reconnect the browser sends the header; it wins over the query of the first connect.
    async with open_stream(http, member.token, last_event_id=9, query_last_event_id=2) as stream:
        assert stream.status == 200, stream.body
        assert seqs(await stream.notifications(2, WAIT)) == [10, 11]
        assert "new_notification" not in kinds(await stream.until_heartbeat(WAIT))


async def test_first_connect_without_a_position_starts_from_now(http, session):
    admin = await register_admin(http, session)
    member = await register(http)
    await add_notifications(session, member.id, 3)
    async with open_stream(http, member.token) as stream:
        assert stream.status == 200, stream.body
        opening = await stream.until_heartbeat(WAIT)
        assert kinds(opening) == ["notification_count"]
        assert opening[0].json()["seq"] == 3
        await assert_live(http, stream, admin, 4)


# ---- 2. reset --------------------------------------------------------------------------------


async def expect_reset(stream: EventStream, seq: int, unread: int) -> None:
    assert stream.status == 200, stream.body
    opening = await stream.until_heartbeat(WAIT)
    assert kinds(opening) == ["reset", "notification_count"], opening
    reset = opening[0]
    assert reset.id == str(seq)
    assert {k: v for k, v in reset.json().items() if k != "version"} == {"seq": seq, "unread_count": unread}
    assert isinstance(reset.json()["version"], int)  # the page adopts it, even when lower


async def test_reset_when_last_event_id_is_beyond_the_users_seq(http, session):
    admin = await register_admin(http, session)
    member = await register(http)
    await add_notifications(session, member.id, 10)
    async with open_stream(http, member.token, last_event_id=11) as stream:
        await expect_reset(stream, 10, 10)
        await assert_live(http, stream, admin, 11)  # the stream goes on from the reset point
    async with open_stream(http, member.token, last_event_id=1_000_000) as stream:
        await expect_reset(stream, 11, 11)


async def test_reset_when_last_event_id_is_not_a_seq(http, session):
    first, second = await register(http), await register(http)
    for member in (first, second):
        await add_notifications(session, member.id, 10)

    async def check(member: Account, header: str | None, query: str | None = None) -> None:
        async with open_stream(http, member.token, last_event_id=header, query_last_event_id=query) as stream:
            await expect_reset(stream, 10, 10)

    # Side by side (each waits for a heartbeat), within each user's cap of 3.
    await asyncio.gather(
        check(first, "abc"), check(first, "-1"), check(first, "3.5"), check(second, "0x05"), check(second, None, "abc")
    )


async def test_reset_when_more_items_were_missed_than_the_replay_limit(http, session):
    member = await register(http)
    await add_notifications(session, member.id, REPLAY_LIMIT + 10)
    last = REPLAY_LIMIT + 10
    # One more than the limit missed: continuity cannot be shown cheaply, so reset.
    async with open_stream(http, member.token, last_event_id=last - REPLAY_LIMIT - 1) as stream:
        await expect_reset(stream, last, min(last, UNREAD_COUNT_LIMIT))  # counts stop at 100
    # Exactly the limit missed: replayed in full.
    async with open_stream(http, member.token, last_event_id=last - REPLAY_LIMIT) as stream:
        assert stream.status == 200, stream.body
        assert seqs(await stream.notifications(REPLAY_LIMIT, WAIT)) == list(range(11, last + 1))
        assert kinds(await stream.until_heartbeat(WAIT)) == ["notification_count"]


# ---- 4. connection cap -------------------------------------------------------------------------


async def test_connection_cap_refuses_the_fourth_stream_with_429_until_one_closes(http, session):
    member = await register(http)
    other = await register(http)
    opened = []
    try:
        for _ in range(CONNECTION_CAP):
            context = open_stream(http, member.token)
            stream = await context.__aenter__()
            opened.append(context)
            assert stream.status == 200, stream.body
            assert (await stream.next(WAIT)).item == Comment("connected")  # streaming, not just answered

        async with open_stream(http, member.token) as refused:
            assert refused.status == 429
            assert refused.response.headers["content-type"].startswith("application/json")
            assert refused.json() == {
                "error": {"code": "rate_limited", "message": f"At most {CONNECTION_CAP} open streams per user."}
            }
        async with open_stream(http, other.token) as unaffected:  # the cap is per user
            assert unaffected.status == 200, unaffected.body

        await opened.pop(0).__aexit__(None, None, None)  # the client closes one stream
        started = time.monotonic()
        while True:
            context = open_stream(http, member.token)
            stream = await context.__aenter__()
            if stream.status == 200:
                opened.append(context)
                break
            await context.__aexit__(None, None, None)
            assert stream.status == 429, stream.body
            assert time.monotonic() - started < WAIT, "a closed stream still counts against the cap"
            await asyncio.sleep(0.05)
        assert (await stream.next_event(WAIT)).event == "notification_count"
    finally:
        for context in opened:
            await context.__aexit__(None, None, None)


async def test_connection_cap_holds_when_streams_are_opened_all_at_once(http, session):
    """Six tabs of one user restored at once: exactly the cap of them stream, the rest get 429."""
    member = await register(http)
    contexts = [open_stream(http, member.token) for _ in range(2 * CONNECTION_CAP)]
    results = await asyncio.gather(*(context.__aenter__() for context in contexts), return_exceptions=True)
    try:
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors
        statuses = sorted(stream.status for stream in results)  # type: ignore[union-attr]
        for stream in results:
            if stream.status == 200:  # type: ignore[union-attr]
                assert (await stream.next(WAIT)).item == Comment("connected")  # type: ignore[union-attr]
    finally:
        for context, result in zip(contexts, results, strict=True):
            if not isinstance(result, BaseException):
                await context.__aexit__(None, None, None)
    assert statuses == [200] * CONNECTION_CAP + [429] * CONNECTION_CAP, statuses


# ---- 5. origin ---------------------------------------------------------------------------------


async def test_stream_from_a_foreign_origin_is_refused_with_403(http, server: LiveServer, session):
    member = await register(http)
    for origin in ("http://evil.example", "null", f"{server.url}.evil.example", server.url.replace("http", "https")):
        async with open_stream(http, member.token, headers={"Origin": origin}) as api:
            assert api.status == 403, (origin, api.body)
            assert api.json()["error"]["code"] == "forbidden"
        async with open_stream(http, member.token, path=PAGE_STREAM, headers={"Origin": origin}) as page:
            assert page.status == 403, (origin, page.body)


async def test_stream_from_the_apps_own_origin_is_accepted(http, server: LiveServer, session):
    member = await register(http)
    for path in (API_STREAM, PAGE_STREAM):
        for origin in (server.url, server.url + "/"):
            async with open_stream(http, member.token, path=path, headers={"Origin": origin}) as stream:
                assert stream.status == 200, (path, origin, stream.body)
                first = await stream.next(WAIT)
                assert first.item == Comment("connected")


# ---- 6. token expiry ---------------------------------------------------------------------------


async def test_stream_ends_by_itself_when_its_access_token_expires(http, session):
    member = await register(http)
    issued = time.time()
    token = issue_access_token(member.id, TEST_SECRET, timedelta(seconds=2), "test-session")
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]  # whole seconds
    async with open_stream(http, token) as stream:
        assert stream.status == 200, stream.body
        try:
            closed = await stream.wait_closed(within=8)
        except TimeoutError:
            raise AssertionError("the stream outlived its access token by more than 6 s") from None
        ended = time.time()
    assert isinstance(closed, Closed) and closed.error is None, closed  # a clean end, not a broken socket
    print(f"\n[token expiry] token valid {expires - issued:.2f} s; stream ended {ended - issued:.2f} s after issue")
    assert ended >= expires - 0.3, f"ended {expires - ended:.2f} s before the token expired"
    assert ended - issued <= 5.0, f"ended {ended - issued:.2f} s after issue (token valid 2 s)"


async def test_expired_or_garbage_token_is_refused_with_401_on_both_streams(http, session):
    member = await register(http)
    tokens = {
        "expired": issue_access_token(member.id, TEST_SECRET, timedelta(seconds=-30), "test-session"),
        "wrong key": issue_access_token(
            member.id, "another-secret-key-of-enough-length-000000", timedelta(minutes=5), "test-session"
        ),
        "garbage": "not-a-jwt",
    }
    for name, token in tokens.items():
        for path in (API_STREAM, PAGE_STREAM):
            async with open_stream(http, token, path=path) as stream:
                assert stream.status == 401, (name, path, stream.status, stream.response.headers.get("location"))
                if path == API_STREAM:
                    assert stream.json()["error"]["code"] == "unauthorized"


# ---- 8. heartbeat ------------------------------------------------------------------------------


async def test_idle_stream_carries_keep_alive_comments_every_heartbeat(http, session):
    member = await register(http)
    beats_wanted = 3
    limit = HEARTBEAT_SECONDS + 0.8  # a heartbeat late by more than this is a silence a proxy may cut
    async with open_stream(http, member.token) as stream:
        assert stream.status == 200, stream.body
        while True:  # the opening: the connected comment, then the count
            received = await stream.next(WAIT)
            assert not isinstance(received.item, Closed), received.item
            if isinstance(received.item, Event):
                assert received.item.event == "notification_count", received.item
                break
        times = [received.at]
        while len(times) <= beats_wanted:
            try:
                received = await stream.next(limit - (time.monotonic() - times[-1]))
            except TimeoutError:
                raise AssertionError(
                    f"no keep-alive within {limit} s of the last sign of life (after {len(times) - 1} keep-alives)"
                ) from None
            assert received.item == Comment("keep-alive"), f"an idle stream sent {received.item}"
            times.append(received.at)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    print(
        f"\n[heartbeat] keep-alive gaps {[round(g, 2) for g in gaps]} s (STREAM_HEARTBEAT_SECONDS={HEARTBEAT_SECONDS})"
    )
    assert min(gaps) >= HEARTBEAT_SECONDS / 2, f"keep-alives {min(gaps):.2f} s apart: more often than configured"
