"""The JSON shapes of notifications in the API (and, for `NotificationJson`, in the streams)."""

from __future__ import annotations

from typing import Any, TypedDict

from webapp.openapi import Timestamp


class ActorJson(TypedDict):
    """The person whose act a notification tells; `initials` (1 or 2 letters) for an avatar."""

    id: int
    name: str
    initials: str


class NotificationJson(TypedDict):
    id: int
    seq: int
    type: str
    title: str
    body: str
    url: str
    data: dict[str, Any]
    created_at: Timestamp
    seen_at: Timestamp | None
    read_at: Timestamp | None
    obsolete: bool
    # Past its time (a reminder once its event has started): out of every count, kept in history.
    expires_at: Timestamp | None
    expired: bool
    # Who caused it (an inviter, an announcer, a reviewer, the one booker of an organizer's
    # news); null when no other person did (reminders, your own booking, several bookers).
    actor: ActorJson | None
    archived_at: Timestamp | None


class NotificationPage(TypedDict):
    """Newest first; pass `next_cursor` as `cursor` for the next page (null: no more)."""

    items: list[NotificationJson]
    unread_count: int
    next_cursor: str | None


class InboxCount(TypedDict):
    """`unread_count` counts up to 100 (100 means more than 99); apply it only if `version` is newer."""

    unread_count: int
    seq: int
    version: int


class NotificationChanged(TypedDict):
    notification: NotificationJson
    unread_count: int


class ReadAllResult(TypedDict):
    updated: int
    unread_count: int


class ArchiveReadResult(TypedDict):
    """How many read notifications were archived, and the unread count (which they were not in)."""

    archived: int
    unread_count: int


class AnnouncementAccepted(TypedDict):
    """`recipients` as counted now; `report_id`: its delivery report (GET /api/v1/deliveries/{id})."""

    status: str
    recipients: int
    report_id: int
