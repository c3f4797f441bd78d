"""The delivery protocol, defined once (DESIGN.md §3a).

These are the messages that travel from the services, through the doorbell (as JSON objects, the
"wire form"), to the streams, and from the streams to the page and API clients. The notification
service builds them; the doorbell carries `to_wire`; the stream reads `from_wire`; the two SSE
encoders and `/cable` write them out; `static/js/notifications.js` follows the description below.

  new    a notification was committed. Fields: user, seq, notification (as the JSON API shows
         it), unread_count and version after it.
  read   some items changed read state. Fields: user, ids, read (true: read, false: unread),
         unread_count, seq, version; up_to_seq when "mark all as read" covered everything up to
         a seq.
  archive some items were archived (archived true) or brought back (false): they leave (or
         return to) every view but the inbox's Archived filter. Fields: user, ids, archived,
         unread_count, seq, version.
  count  the unread count as of (seq, version).
  reset  (stream → client only) continuity cannot be proven: the client adopts seq, version and
         unread_count as given — even when lower than what it held — and refetches its views.
  close  (server → stream only) end this stream now (shutdown, a reader too slow, a session that
         ended); the client reconnects and resumes by seq.
  resync (server → stream only) something may have been missed: re-read the database.
  session_ended (service → every web process) a session ended (logout, a refresh token reused):
         Fields: user, session. Each process refuses the session's access tokens from now on
         and sends its streams and `/cable` connections `close` (reason "session_ended").

The ordering rules, for every consumer: an item is applied only if its seq is above the last seq
shown; a read, archive or count only if its version is above the last version applied; `reset` is the one
message that may move both down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class NewMessage:
    user: int
    seq: int
    notification: Mapping[str, Any]
    unread_count: int
    version: int
    type: str = field(default="new", init=False)


@dataclass(frozen=True)
class ReadMessage:
    user: int
    ids: list[int]
    read: bool
    unread_count: int
    seq: int
    version: int
    up_to_seq: int | None = None
    type: str = field(default="read", init=False)


@dataclass(frozen=True)
class ArchiveMessage:
    user: int
    ids: list[int]
    archived: bool
    unread_count: int
    seq: int
    version: int
    type: str = field(default="archive", init=False)


@dataclass(frozen=True)
class CountMessage:
    user: int
    unread_count: int
    seq: int
    version: int
    type: str = field(default="count", init=False)


@dataclass(frozen=True)
class ResetMessage:
    seq: int
    unread_count: int
    version: int
    type: str = field(default="reset", init=False)


@dataclass(frozen=True)
class CloseMessage:
    reason: str = "closed"
    type: str = field(default="close", init=False)


@dataclass(frozen=True)
class ResyncMessage:
    type: str = field(default="resync", init=False)


@dataclass(frozen=True)
class SessionEndedMessage:
    user: int
    session: str
    type: str = field(default="session_ended", init=False)


Message = (
    NewMessage
    | ReadMessage
    | ArchiveMessage
    | CountMessage
    | ResetMessage
    | CloseMessage
    | ResyncMessage
    | SessionEndedMessage
)
_KINDS: dict[str, type[Any]] = {
    "new": NewMessage,
    "read": ReadMessage,
    "archive": ArchiveMessage,
    "count": CountMessage,
    "reset": ResetMessage,
    "close": CloseMessage,
    "resync": ResyncMessage,
    "session_ended": SessionEndedMessage,
}


def to_wire(message: Message) -> dict[str, Any]:
    """The JSON object the doorbell carries (None fields left out). Shallow: `asdict` deep-copies
    every nested value, which was a tenth of a 10,000-recipient fan-out's CPU (bench/run.py)."""
    values = ((f.name, getattr(message, f.name)) for f in fields(message))
    return {name: value for name, value in values if value is not None}


def from_wire(data: dict[str, Any]) -> Message | None:
    """The message a wire object stands for; None for anything that is not one (a foreign or
    malformed publish is ignored, never trusted)."""
    kind = _KINDS.get(str(data.get("type")))
    if kind is None:
        return None
    try:
        return kind(**{k: v for k, v in data.items() if k != "type"})  # type: ignore[no-any-return]
    except TypeError:
        return None


def client_fields(message: NewMessage | ReadMessage | ArchiveMessage | CountMessage | ResetMessage) -> dict[str, Any]:
    """What a client is sent of a message: everything but the routing (type, user) and, for
    `new`, the notification itself (which travels as the event's data)."""
    return {k: v for k, v in to_wire(message).items() if k not in ("type", "user", "notification")}
