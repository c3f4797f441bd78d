"""A live notification and the count that comes with it leave in one write.

Each write is a system call and a trip through the answer's layers: in a broadcast to 10,000 open
streams, two writes per ring were a third of the web process's work (bench/run.py, py-spy).
"""

from __future__ import annotations

import asyncio

from tests.asgi import Client, holds_within
from webapp.db import create_sessionmaker
from webapp.notifications.stream import InboxStream, StreamConfig
from webapp.realtime.doorbell import Hub
from webapp.realtime.protocol import CountMessage, NewMessage, to_wire
from webapp.web.sse import api_encoder, inbox_answer


def chunks_with(client: Client, marker: bytes) -> list[bytes]:
    return [body for body, _ in client.bodies() if marker in body]


async def test_a_live_notification_and_its_count_are_one_chunk_of_the_answer(engine, users):
    user, _ = users
    hub = Hub()
    subscription = hub.subscribe(user, 16)
    stream = InboxStream(
        user_id=user,
        last_seq=None,
        subscription=subscription,
        sessionmaker=create_sessionmaker(engine),
        config=StreamConfig(heartbeat_seconds=60),
    )
    client = Client()
    running = asyncio.ensure_future(inbox_answer(stream, api_encoder)({"type": "http"}, client.receive, client.send))  # type: ignore[arg-type]
    await holds_within(lambda: chunks_with(client, b"notification_count"), 5)

    notification = {"id": 7, "seq": 1, "title": "Doors open"}
    hub.deliver(to_wire(NewMessage(user=user, seq=1, notification=notification, unread_count=1, version=1)))
    await holds_within(lambda: chunks_with(client, b"new_notification"), 5)

    (ring,) = chunks_with(client, b"new_notification")
    assert ring.startswith(b"id: 1\r\nevent: new_notification\r\n") and b'"title":"Doors open"' in ring
    assert b"event: notification_count" in ring and b'"unread_count":1' in ring
    assert ring.index(b"new_notification") < ring.index(b"notification_count")

    # A change that is not a new notification is written alone, as soon as it comes.
    hub.deliver(to_wire(CountMessage(user=user, unread_count=0, seq=1, version=2)))
    await holds_within(lambda: len(chunks_with(client, b"notification_count")) == 3, 5)
    assert b"new_notification" not in chunks_with(client, b"notification_count")[-1]

    client.leave()
    await asyncio.wait_for(running, 5)
