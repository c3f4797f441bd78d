"""The real @rails/actioncable consumer whose subscription overflows is told to reconnect,
reconnects by itself, and resumes without loss.

The consumer (actioncable_client.mjs in its resuming mode) runs its first WebSocket over a socket
this test made with a 4 KiB receive buffer and a 1400-byte segment size, as a phone on a poor link
has. Another process of the deployment (this one, as a worker would) commits big notifications, a
few per transaction, and rings them through Redis. While the consumer reads, it keeps up with that
pace and is never dropped. Then it stops reading, right after a ping: the server's send path fills
and the subscription's buffer (STREAM_QUEUE_SIZE) overflows. How much the kernel buffers take
first varies (the sender's grows by itself), so the pause brings about 4 MB, far more than they
hold, and a pause they still swallowed whole is followed by another (MAX_PAUSES). The pause stays
shorter than ActionCable's ConnectionMonitor.staleThreshold (6 s): a consumer silent for longer is
reopened by its own monitor, without the server's word.

When the consumer reads again it must find ActionCable's `disconnect` frame with
`reconnect: true`; ActionCable closes, calls `disconnected`, and its monitor reconnects on its own
schedule (6 to 18 s later); the resubscribe carries the seq of the last notification received, so
the subscription resumes there and every notification, including those committed while it was
away, arrives exactly once, in order.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import TEST_SECRET
from tests.interop.conftest import assert_no_server_errors, create_account
from tests.interop.test_actioncable_client import frame_of
from tests.services import scaled_env
from webapp.notifications.services import NewNotification, NotificationService
from webapp.realtime.doorbell import RedisDoorbell, current_doorbell, set_doorbell
from webapp.settings import load_settings

QUEUE_SIZE = 32
REPLAY_LIMIT = 10_000  # all that a pause leaves behind is replayed (never a reset)
BATCH = 4  # notifications per commit, as a job's chunk
PAUSED_BATCH = 16  # while it does not read: about 4 MB in 4 s, more than the kernel buffers take
COMMITS_PER_SECOND = 30  # at most: about 120 big notifications a second
WHILE_READING = 1.0  # seconds of that pace while the consumer reads: it keeps up and stays
MAX_WHILE_PAUSED = 3000  # the same pace while it does not read: its subscription overflows
AFTER = 20  # committed one by one once it reads again
MAX_PAUSES = 3
STALE_THRESHOLD = 6.0  # ActionCable's ConnectionMonitor.staleThreshold, in seconds
PAUSE_LIMIT = 4.5  # resume by then, whatever was committed: the monitor must not act first
TITLE = 190
BODY = 2000


def kind(name: str):  # type: ignore[no-untyped-def]
    return lambda line: line.get("kind") == name


def new_notification(line: dict[str, Any]) -> bool:
    return line.get("kind") == "received" and (line.get("message") or {}).get("type") == "new_notification"


def small_buffer_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window from the start
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)
    sock.connect(("127.0.0.1", port))
    return sock


async def commit(session: AsyncSession, user_id: int, seqs: range, committed: dict[int, float]) -> None:
    """Big notifications in one transaction; records when each was committed."""
    # Random text: the consumer's `ws` negotiates permessage-deflate, which would shrink a
    # repetitive payload to a few bytes on the wire.
    items = [
        NewNotification(
            user_id=user_id,
            type="general",
            title=f"big {n} {secrets.token_urlsafe(TITLE)[:TITLE]}",
            body=secrets.token_urlsafe(BODY)[:BODY],
        )
        for n in seqs
    ]
    await NotificationService(session).notify_many(items)
    await session.commit()
    committed.update(dict.fromkeys(seqs, time.monotonic()))


async def produce(
    session: AsyncSession,
    user_id: int,
    committed: dict[int, float],
    seconds: float,
    most: int = 10**6,
    batch: int = BATCH,
) -> None:
    """Commits `batch` notifications at a time, at most COMMITS_PER_SECOND times a second, for
    `seconds` or until `most` more were committed."""
    started, target = time.monotonic(), len(committed) + most
    while len(committed) < target and time.monotonic() - started < seconds:
        next_commit = time.monotonic() + 1 / COMMITS_PER_SECOND
        await commit(session, user_id, range(len(committed) + 1, len(committed) + batch + 1), committed)
        await asyncio.sleep(max(0.0, next_commit - time.monotonic()))


async def test_an_overflowing_actioncable_consumer_reconnects_by_itself_and_resumes_exactly_once(
    live_servers, node_client, http_for, database_url, session: AsyncSession
) -> None:
    env = {
        **scaled_env(database_url, TEST_SECRET),
        "STREAM_QUEUE_SIZE": str(QUEUE_SIZE),
        "STREAM_REPLAY_LIMIT": str(REPLAY_LIMIT),
    }
    server = live_servers(**env)
    log_start = server.log_path.stat().st_size
    http = http_for(server)
    reader = await create_account(session, http)
    # This process rings the server through Redis, in the server's namespace, as a worker does.
    bell = RedisDoorbell.from_settings(load_settings(env), listen=False)
    previous = current_doorbell()

    first_socket = small_buffer_socket(server.port)
    try:
        client = await node_client(
            "actioncable_client.mjs",
            server,
            reader.token,
            max_seconds=120,
            env={"TIDINGS_RESUME_FROM_SEQ": "0", "TIDINGS_SOCKET_FD": str(first_socket.fileno())},
            pass_fds=(first_socket.fileno(),),
        )
    finally:
        first_socket.close()  # the consumer holds its own copy
    try:
        connected = await client.wait_for(kind("connected"), "the connected() callback", seconds=15)
        assert connected["reconnected"] is False
        first_subscribe = await client.wait_for(kind("sent"), "the subscribe command")
        assert json.loads(first_subscribe["data"]["identifier"]) == {"channel": "NotificationsChannel", "last_seq": 0}
        await client.wait_for(
            lambda line: kind("received")(line) and line["message"]["type"] == "notification_count",
            "the opening notification_count",
        )

        set_doorbell(bell)
        committed: dict[int, float] = {}
        # A consumer that reads keeps up with this pace: everything arrives, nothing is dropped.
        await produce(session, reader.id, committed, WHILE_READING)
        while_reading = len(committed)
        await client.wait_for(
            lambda line: new_notification(line) and line["message"]["notification"]["seq"] == while_reading,
            f"notification {while_reading} while reading",
        )
        assert not client.matching(frame_of("disconnect")), "a consumer that reads was disconnected"

        # How much the kernel buffers absorb before the server's send blocks varies (the sender's
        # buffer grows by itself): a pause they swallow whole ends with everything read and no
        # disconnect, and the consumer pauses again, at most MAX_PAUSES times.
        pause_seconds, during_pause = 0.0, 0
        for pauses in range(1, MAX_PAUSES + 1):
            await client.command("pause")
            paused = await client.wait_for(kind("paused"), "the pause after the next ping", seconds=10, count=pauses)
            paused_at, before = client.arrival(paused), len(committed)
            seconds = paused_at + PAUSE_LIMIT - 1 - time.monotonic()
            await produce(session, reader.id, committed, seconds, MAX_WHILE_PAUSED, batch=PAUSED_BATCH)
            await asyncio.sleep(max(0.0, min(paused_at + PAUSE_LIMIT, time.monotonic() + 0.5) - time.monotonic()))
            await client.command("resume")
            resumed = await client.wait_for(kind("resumed"), "the resume", count=pauses)
            pause_seconds = max(pause_seconds, client.arrival(resumed) - paused_at)
            during_pause += len(committed) - before
            print(f"\n[actioncable overflow] pause {pauses}: {len(committed) - before} notifications committed")
            for _ in range(AFTER):
                await commit(session, reader.id, range(len(committed) + 1, len(committed) + 2), committed)
            items = len(committed)
            outcome = await client.wait_for(
                lambda line: (
                    frame_of("disconnect")(line)
                    or (new_notification(line) and line["message"]["notification"]["seq"] == items)
                ),
                f"the disconnect frame or notification {items}",
                seconds=30,
            )
            if frame_of("disconnect")(outcome):
                break
        set_doorbell(previous)

        disconnect = await client.wait_for(frame_of("disconnect"), "the server's disconnect frame", seconds=30)
        disconnected = await client.wait_for(kind("disconnected"), "the disconnected() callback", seconds=10)
        # ActionCable's own monitor reconnects once the connection has been quiet for its stale
        # threshold, at its next poll (every 6 to 12 s): up to about 18 s.
        reconnected = await client.wait_for(kind("connected"), "connected({reconnected: true})", seconds=40, count=2)
        last = await client.wait_for(
            lambda line: new_notification(line) and line["message"]["notification"]["seq"] == items,
            f"notification {items}",
            seconds=20,
        )
        await client.wait_for(frame_of("ping"), "a ping after the last notification", seconds=10, count=1)
        await asyncio.sleep(1)  # anything still on its way
    finally:
        set_doorbell(previous)
        await bell.stop()

    lines = list(client.lines)
    position = {id(line): i for i, line in enumerate(lines)}
    received = [line["message"]["notification"]["seq"] for line in lines if new_notification(line)]
    before_disconnect = [
        line["message"]["notification"]["seq"] for line in lines[: position[id(disconnect)]] if new_notification(line)
    ]
    subscribes = [line["data"] for line in lines if kind("sent")(line) and line["data"]["command"] == "subscribe"]
    opened = [line for line in lines if kind("open")(line)]
    delays = [
        client.arrival(line) - committed[line["message"]["notification"]["seq"]]
        for line in lines
        if new_notification(line)
    ]
    print(
        f"\n[actioncable overflow] {while_reading} notifications committed while reading, {during_pause} during "
        f"{pauses} pause(s) of at most {pause_seconds:.1f} s, {AFTER} after each (queue {QUEUE_SIZE}); "
        f"{len(before_disconnect)} read before "
        f"{disconnect['frame']}; disconnected → reconnected "
        f"{client.arrival(reconnected) - client.arrival(disconnected):.1f} s; seconds from commit to arrival: "
        f"min {min(delays):.2f}, max {max(delays):.2f}; last one {client.arrival(last) - committed[items]:.2f}; "
        f"resubscribed with {subscribes[1:]}"
    )
    assert pause_seconds < STALE_THRESHOLD, "ActionCable's monitor may have reopened the paused connection itself"
    assert disconnect["frame"] == {"type": "disconnect", "reason": "slow_reader", "reconnect": True}
    assert disconnected["willAttemptReconnect"] is True
    assert reconnected["reconnected"] is True
    assert position[id(disconnect)] < position[id(disconnected)] < position[id(reconnected)]
    assert while_reading < len(before_disconnect) < items - AFTER, "the subscription never overflowed"
    assert len(opened) == 2, "one reconnect, made after the disconnect frame (not a stale-connection reopen)"
    # The resubscribe ActionCable sent on reconnecting carried the position the consumer had reached.
    assert len(subscribes) == 2, subscribes
    assert json.loads(subscribes[1]["identifier"]) == {
        "channel": "NotificationsChannel",
        "last_seq": before_disconnect[-1],
    }
    assert not client.matching(kind("duplicate")), "the server replayed what the consumer already had"
    assert received == list(range(1, items + 1)), received  # every notification exactly once, in order
    assert_no_server_errors(server, log_start)
