"""A web process that cannot reach Redis at all still shows every committed notification on its
open streams within STREAM_RESYNC_SECONDS, exactly once, and keeps answering pages and the API.

`unreachable_redis_server` runs in scaled mode with a REDIS_URL whose port refuses every
connection: its doorbell never hears a ring and cannot send one, its login limits fail open, its
outbox hand-overs fail. The notifications are committed elsewhere, so no ring could reach it even
if its Redis worked: from this process, as a worker of the deployment would, and by an
announcement through the embedded `server`, whose own job commits them and rings only that
server's streams. Only the periodic check of its open streams against the database can bring them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from tests.conftest import DEFAULT_PASSWORD
from tests.reliability.cable import CableClient
from tests.reliability.conftest import (
    RESYNC_SECONDS,
    Account,
    add_notifications,
    announce,
    bearer,
    inbox_seq,
    log_tail,
    register,
    register_admin,
)
from tests.reliability.sse import PAGE_STREAM, Closed, Event, EventStream, open_stream
from webapp.auth.middleware import ACCESS_COOKIE

# A notification committed just after a check waits for the next one; the check, the replay from
# the database and the send then take a moment on a busy machine.
SLACK_SECONDS = 1.0
WITHIN = RESYNC_SECONDS + SLACK_SECONDS
ANSWER_LIMIT = 2.0  # seconds: a refused Redis connection fails at once, nothing may wait for it

Arrivals = list[tuple[int, float]]  # (seq, time.monotonic() it arrived)


async def sse_arrivals(stream: EventStream, event: str, count: int, within: float) -> Arrivals:
    """The next `count` events named `event`, with the time their bytes were read."""
    deadline = time.monotonic() + within
    got: Arrivals = []
    while len(got) < count:
        try:
            received = await stream.next(deadline - time.monotonic())
        except TimeoutError:
            raise AssertionError(f"{event}: only {got} of {count} within {within:.1f} s") from None
        item = received.item
        assert not isinstance(item, Closed), f"the stream ended: {item}"
        if isinstance(item, Event) and item.event == event:
            got.append((int(item.id or 0), received.at))
    return got


async def cable_arrivals(cable: CableClient, count: int, within: float) -> Arrivals:
    deadline = time.monotonic() + within
    got: Arrivals = []
    while len(got) < count:
        try:
            message = await cable.message(max(deadline - time.monotonic(), 0.01))
        except TimeoutError:
            raise AssertionError(f"/cable: only {got} of {count} within {within:.1f} s") from None
        assert message is not None, "the /cable socket closed"
        if message["type"] == "new_notification":
            got.append((message["notification"]["seq"], time.monotonic()))
    return got


async def sse_quiet(stream: EventStream, event: str, seconds: float) -> list[Event]:
    """The `event`s that arrive within `seconds` (expected: none more)."""
    deadline = time.monotonic() + seconds
    seen: list[Event] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = (await stream.next(left)).item
        except TimeoutError:
            break
        assert not isinstance(item, Closed), f"the stream ended: {item}"
        if isinstance(item, Event) and item.event == event:
            seen.append(item)
    return seen


async def cable_quiet(cable: CableClient, seconds: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + seconds
    seen: list[dict[str, object]] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await cable.message(left)
        except TimeoutError:
            break
        assert message is not None, "the /cable socket closed"
        if message["type"] == "new_notification":
            seen.append(message)
    return seen


async def committed_at(http: httpx.AsyncClient, account: Account, seq: int, within: float = 30.0) -> float:
    """When the user's inbox reached `seq`, read through another server every 20 ms."""
    deadline = time.monotonic() + within
    while await inbox_seq(http, account) < seq:
        assert time.monotonic() < deadline, f"the inbox never reached seq {seq}"
        await asyncio.sleep(0.02)
    return time.monotonic()


def requests_on(
    http: httpx.AsyncClient, member: Account, notification_id: int
) -> dict[str, Callable[[], Awaitable[httpx.Response]]]:
    cookie = {"Cookie": f"{ACCESS_COOKIE}={member.token}"}
    return {
        "healthz": lambda: http.get("/healthz"),
        "page": lambda: http.get("/notifications", headers=cookie),
        "unread_count": lambda: http.get("/api/v1/notifications/unread_count", headers=bearer(member)),
        "list": lambda: http.get("/api/v1/notifications", headers=bearer(member)),
        "login": lambda: http.post("/api/v1/auth/login", json={"email": member.email, "password": DEFAULT_PASSWORD}),
        "mark read": lambda: http.post(f"/api/v1/notifications/{notification_id}/read", headers=bearer(member)),
    }


async def test_a_web_process_that_cannot_reach_redis_still_delivers_every_notification_within_the_resync_interval(
    unreachable_redis_server, server, session
):
    async with (
        httpx.AsyncClient(base_url=unreachable_redis_server.url, timeout=30) as http,
        httpx.AsyncClient(base_url=server.url, timeout=30) as elsewhere,
    ):
        admin = await register_admin(elsewhere, session)
        member = await register(http)
        cable = await CableClient.open(unreachable_redis_server.url, member.token)
        try:
            await cable.expect("welcome")
            await cable.subscribe(last_seq=0)
            opening = await cable.message(10)
            assert opening is not None and opening["type"] == "notification_count", opening
            async with (
                open_stream(http, member.token, last_event_id=0) as api,
                open_stream(http, member.token, last_event_id=0, path=PAGE_STREAM) as page,
            ):
                assert api.status == 200 and page.status == 200, (api.body, page.body)
                await api.until_heartbeat(5)  # open and idle
                await page.until_heartbeat(5)

                async def arrivals(count: int) -> tuple[Arrivals, Arrivals, Arrivals]:
                    return await asyncio.gather(
                        sse_arrivals(api, "new_notification", count, WITHIN + 10),
                        sse_arrivals(page, "notification", count, WITHIN + 10),
                        cable_arrivals(cable, count, WITHIN + 10),
                    )

                # 1. Committed by another process of the deployment (this one), as a worker would.
                collecting = asyncio.create_task(arrivals(2))
                await add_notifications(session, member.id, 2, prefix="from a worker")
                by_worker = time.monotonic()
                worker_round = await collecting

                # 2. Announced through another web process, whose job commits and rings locally.
                collecting = asyncio.create_task(arrivals(1))
                await announce(elsewhere, admin, "announced elsewhere")
                by_announcement = await committed_at(elsewhere, member, 3)
                announcement_round = await collecting

                # Nothing twice: two more checks pass with nothing new. Meanwhile the process that
                # cannot reach Redis answers pages and the API (a login checks the Redis limit, a
                # read commits and tries to ring).
                timings: dict[str, float] = {}
                statuses: dict[str, int] = {}

                async def use_the_api() -> None:
                    notification_id = (await http.get("/api/v1/notifications", headers=bearer(member))).json()["items"][
                        0
                    ]["id"]
                    for name, request in requests_on(http, member, notification_id).items():
                        started = time.monotonic()
                        response = await request()
                        timings[name] = time.monotonic() - started
                        statuses[name] = response.status_code

                quiet_for = RESYNC_SECONDS * 2 + 0.5
                extra_api, extra_page, extra_cable, _ = await asyncio.gather(
                    sse_quiet(api, "new_notification", quiet_for),
                    sse_quiet(page, "notification", quiet_for),
                    cable_quiet(cable, quiet_for),
                    use_the_api(),
                )
        finally:
            await cable.close()
        assert await inbox_seq(http, member) == 3

    rounds = {"worker commit": (worker_round, by_worker), "announcement": (announcement_round, by_announcement)}
    delays = {
        (round_name, client): [arrived - committed for _, arrived in got]
        for round_name, (per_client, committed) in rounds.items()
        for client, got in zip(("API SSE", "page SSE", "/cable"), per_client, strict=True)
    }
    print(
        f"\n[unreachable redis] STREAM_RESYNC_SECONDS={RESYNC_SECONDS}; seconds from commit to arrival: "
        + "; ".join(
            f"{round_name} → {client} " + ", ".join(f"{d:.2f}" for d in values)
            for (round_name, client), values in delays.items()
        )
        + "; requests on that process: "
        + ", ".join(f"{name} {statuses[name]} in {seconds * 1000:.0f} ms" for name, seconds in timings.items())
    )
    for client in range(3):
        assert [seq for seq, _ in worker_round[client] + announcement_round[client]] == [1, 2, 3]
    assert (extra_api, extra_page, extra_cable) == ([], [], []), "a notification arrived twice"
    late = {key: max(values) for key, values in delays.items() if max(values) > WITHIN}
    assert not late, f"later than {WITHIN} s after commit: {late}"
    assert all(status == 200 for status in statuses.values()), f"{statuses}\n{log_tail(unreachable_redis_server)}"
    assert max(timings.values()) < ANSWER_LIMIT, timings
