"""A WHATWG EventSource (the `eventsource` package, Node) against GET /api/v1/notifications/stream:
the server ends each stream after STREAM_MAX_LIFETIME_SECONDS, the library reconnects by itself
with Last-Event-ID, and every seq arrives exactly once across the reconnections."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tests.interop.conftest import announce, assert_no_server_errors, create_account

LIFETIME_SECONDS = 2


def is_kind(kind: str):  # type: ignore[no-untyped-def]
    return lambda line: line.get("kind") == kind


def index_of(lines: list[dict[str, Any]], wanted: dict[str, Any]) -> int:
    return next(i for i, line in enumerate(lines) if line is wanted)


def notification_seq(seq: int):  # type: ignore[no-untyped-def]
    return lambda line: line.get("type") == "new_notification" and line["data"]["seq"] == seq


async def test_eventsource_resumes_by_last_event_id_without_loss_or_duplicates(
    live_servers, node_client, http_for, session: AsyncSession
) -> None:
    server = live_servers(STREAM_MAX_LIFETIME_SECONDS=str(LIFETIME_SECONDS))
    log_start = server.log_path.stat().st_size
    http = http_for(server)
    admin = await create_account(session, http, admin=True)
    reader = await create_account(session, http)

    client = await node_client("eventsource_client.mjs", server, reader.token)
    first = await client.wait_for(is_kind("connect"), "the first connection")
    assert first["last_event_id"] is None
    await client.wait_for(is_kind("open"), "the stream to open")
    await client.wait_for(lambda line: line.get("type") == "notification_count", "the opening notification_count")

    # Live, on the first connection. (Each announcement is awaited into the inbox before the next:
    # fan-out may run as parallel jobs, and the titles below are checked in seq order.)
    await announce(http, admin, "First", delivered_to=(reader,))
    await announce(http, admin, "Second", delivered_to=(reader,))
    await client.wait_for(notification_seq(2), "seq 2, live")

    # The server ends the stream at its lifetime; produce while the client waits out `retry`.
    await client.wait_for(is_kind("error"), "the server to end the stream", seconds=LIFETIME_SECONDS + 3)
    await announce(http, admin, "Third", delivered_to=(reader,))
    await announce(http, admin, "Fourth", delivered_to=(reader,))
    assert len(client.matching(is_kind("connect"))) == 1, "3 and 4 must exist before the client reconnects"
    second = await client.wait_for(is_kind("connect"), "the library to reconnect", seconds=6, count=2)
    assert second["last_event_id"] == "2", "the library must resume from the last id it saw"
    await client.wait_for(notification_seq(4), "seqs 3 and 4, replayed after the reconnection")

    # Live again, then one more reconnection: nothing may be replayed twice.
    await announce(http, admin, "Fifth", delivered_to=(reader,))
    await client.wait_for(notification_seq(5), "seq 5")
    third = await client.wait_for(is_kind("connect"), "a second reconnection", seconds=8, count=3)
    before_third = client.lines[: index_of(client.lines, third)]
    last_seen = [line["id"] for line in before_third if line.get("type") == "new_notification"][-1]
    assert third["last_event_id"] == last_seen == "5"
    third_open = await client.wait_for(is_kind("open"), "the third stream to open", count=3)
    await client.wait_for(
        lambda line: (
            line.get("type") == "notification_count"
            and index_of(client.lines, line) > index_of(client.lines, third_open)
        ),
        "the third stream's opening count (after any replay it would send)",
    )

    received: list[dict[str, Any]] = client.matching(lambda line: line.get("type") == "new_notification")
    assert [line["data"]["seq"] for line in received] == [1, 2, 3, 4, 5], client.transcript()
    assert [line["id"] for line in received] == ["1", "2", "3", "4", "5"]
    assert [line["data"]["title"] for line in received] == ["First", "Second", "Third", "Fourth", "Fifth"]
    assert not client.matching(lambda line: line.get("type") == "reset"), "continuity was provable: no reset"
    assert all(line["ready_state"] == 0 for line in client.matching(is_kind("error"))), "it must reconnect, not fail"
    assert_no_server_errors(server, log_start)
