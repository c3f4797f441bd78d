"""The real @rails/actioncable consumer (Node, `ws` as its WebSocket) against WS /cable."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.interop.conftest import announce, assert_no_server_errors, create_account, wait_delivered
from webapp.notifications.models import Notification

CHANNEL_IDENTIFIER = json.dumps({"channel": "NotificationsChannel"}, separators=(",", ":"))  # as JSON.stringify
LIFETIME_SECONDS = 2


def frame_of(kind: str):  # type: ignore[no-untyped-def]
    return lambda line: line.get("kind") == "frame" and line.get("frame", {}).get("type") == kind


def received(message_type: str, **fields: Any):  # type: ignore[no-untyped-def]
    def match(line: dict[str, Any]) -> bool:
        message = line.get("message") or {}
        return (
            line.get("kind") == "received"
            and message.get("type") == message_type
            and all(message.get(k) == v for k, v in fields.items())
        )

    return match


def new_notification_titled(title: str):  # type: ignore[no-untyped-def]
    return lambda line: (
        line.get("kind") == "received"
        and (line.get("message") or {}).get("type") == "new_notification"
        and line["message"]["notification"]["title"] == title
    )


async def test_actioncable_consumer_subscribes_receives_and_marks_read(
    live_servers, node_client, http_for, session: AsyncSession
) -> None:
    server = live_servers()
    log_start = server.log_path.stat().st_size
    http = http_for(server)
    admin = await create_account(session, http, admin=True)
    reader = await create_account(session, http)

    client = await node_client("actioncable_client.mjs", server, reader.token)

    opened = await client.wait_for(lambda line: line.get("kind") == "open", "the WebSocket to open")
    assert opened["protocol"] == "actioncable-v1-json"
    await client.wait_for(frame_of("welcome"), "the welcome frame")
    confirm = await client.wait_for(frame_of("confirm_subscription"), "confirm_subscription")
    assert confirm["frame"]["identifier"] == CHANNEL_IDENTIFIER
    connected = await client.wait_for(lambda line: line.get("kind") == "connected", "the connected() callback")
    assert connected["reconnected"] is False
    await client.wait_for(received("notification_count", unread_count=0), "the opening notification_count")
    assert not client.matching(lambda line: line.get("kind") == "rejected")

    await announce(http, admin, "Doors open at seven", "Bring your ticket.")

    arrived = await client.wait_for(new_notification_titled("Doors open at seven"), "the new_notification")
    notification = arrived["message"]["notification"]
    assert notification["body"] == "Bring your ticket."
    assert notification["type"] == "general"
    assert notification["read_at"] is None
    await client.wait_for(received("notification_count", unread_count=1), "notification_count 1")

    performed = await client.wait_for(lambda line: line.get("kind") == "performed", "perform('mark_as_read')")
    assert performed == {"kind": "performed", "action": "mark_as_read", "id": notification["id"]}
    read = await client.wait_for(received("notification_read"), "the notification_read echo")
    assert read["message"]["ids"] == [notification["id"]]
    assert read["message"]["unread_count"] == 0

    # The server really changed the inbox: the API count and the row agree.
    response = await http.get("/api/v1/notifications/unread_count", headers=reader.bearer)
    assert response.status_code == 200
    assert response.json()["unread_count"] == 0
    owner, read_at = (
        await session.execute(
            select(Notification.user_id, Notification.read_at).where(Notification.id == notification["id"])
        )
    ).one()
    await session.rollback()  # SQLite transactions begin IMMEDIATE: never hold one open on the live server
    assert owner == reader.id and read_at is not None
    # Only the reader's copy: the admin's copy of the same announcement is still unread.
    await wait_delivered(http, admin, "Doors open at seven")
    response = await http.get("/api/v1/notifications/unread_count", headers=admin.bearer)
    assert response.json()["unread_count"] == 1

    # The server keeps the connection alive with pings, which the consumer's monitor records.
    await client.wait_for(frame_of("ping"), "a ping after the exchange", seconds=5, count=2)
    assert not client.matching(lambda line: line.get("kind") in ("close", "disconnected"))
    assert_no_server_errors(server, log_start)


async def test_actioncable_consumer_is_not_left_deaf_after_the_stream_lifetime(
    live_servers, node_client, http_for, session: AsyncSession
) -> None:
    """A plain ActionCable consumer cannot resume by seq. Once its subscription has outlived
    STREAM_MAX_LIFETIME_SECONDS, the server must either go on delivering or close the socket so the
    consumer notices and reconnects; it must never keep the socket open and pinging (so the consumer
    thinks it is live) while no notification reaches it any more."""
    server = live_servers(STREAM_MAX_LIFETIME_SECONDS=str(LIFETIME_SECONDS))
    http = http_for(server)
    admin = await create_account(session, http, admin=True)
    reader = await create_account(session, http)

    client = await node_client("actioncable_client.mjs", server, reader.token)
    await client.wait_for(lambda line: line.get("kind") == "connected", "the connected() callback")
    await client.wait_for(received("notification_count", unread_count=0), "the opening notification_count")

    await asyncio.sleep(LIFETIME_SECONDS + 0.5)  # the subscription has now outlived the stream lifetime
    await announce(http, admin, "After the lifetime")

    def delivered_or_closed(line: dict[str, Any]) -> bool:
        return new_notification_titled("After the lifetime")(line) or line.get("kind") in ("close", "disconnected")

    await client.wait_for(
        delivered_or_closed,
        f"the notification created after the subscription outlived STREAM_MAX_LIFETIME_SECONDS={LIFETIME_SECONDS}, "
        "or a close the consumer can act on (none came: the socket stays open and pinging, the channel is silent)",
        seconds=5,
    )
