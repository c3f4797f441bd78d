"""How a notification looks: one fragment, used in the dropdown, the inbox page and the stream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment

from webapp.db import utcnow
from webapp.notifications.models import NOTIFICATION_TYPES
from webapp.notifications.services import STATUSES, UNREAD_COUNT_LIMIT
from webapp.timeutil import format_in_zone

TYPE_LABELS = {
    "booking_confirmed": "Booking confirmed",
    "booking_cancelled": "Booking cancelled",
    "event_reminder": "Reminder",
    "event_cancelled": "Event cancelled",
    "event_updated": "Event updated",
    "group_invitation": "Group invitation",
    "payment_failed": "Payment failed",
    "review_request": "Review request",
    "general": "Announcement",
    "event_bookings": "Bookings on your event",
    "review_received": "New review",
    "invitation_answered": "Invitation answered",
    "payment_refunded": "Refund",
}


def relative_time(moment: datetime, now: datetime | None = None) -> str:
    seconds = int(((now or utcnow()) - moment).total_seconds())
    if seconds < 45:
        return "just now"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min ago"
    hours = round(seconds / 3600)
    if hours < 24:
        return f"{hours} h ago"
    days = round(seconds / 86400)
    return "yesterday" if days == 1 else f"{days} days ago"


def item_view(payload: Mapping[str, Any], timezone: str) -> dict[str, Any]:
    """The template's view of a notification (as produced by notification_json)."""
    created_at = datetime.fromisoformat(payload["created_at"])
    return {
        **payload,
        # An expired item is past telling: it sits with the read ones, however it was left.
        "unread": payload.get("read_at") is None and not payload.get("expired"),
        "expired": bool(payload.get("expired")),
        "archived": payload.get("archived_at") is not None,
        "label": TYPE_LABELS.get(payload["type"], "Notification")
        + (" · outdated" if payload.get("obsolete") else "")
        + (" · expired" if payload.get("expired") else ""),
        "created_iso": created_at.isoformat(),
        "created_relative": relative_time(created_at),
        "created_local": format_in_zone(created_at, timezone),
    }


def render_item(environment: Environment, payload: Mapping[str, Any], timezone: str) -> str:
    template = environment.get_template("_notification_item.html")
    return template.render(n=item_view(payload, timezone))


def count_label(count: int) -> str:
    """An unread count as the bell shows it: counts stop at 100, which means "more than 99"."""
    return "99+" if count >= UNREAD_COUNT_LIMIT else str(count)


def panel_context(payloads: Sequence[Mapping[str, Any]], unread_count: int, timezone: str) -> dict[str, Any]:
    """The dropdown: its items in "Unread" and "Earlier", the unread count for its header, and
    how many unread items did not fit (at the count's bound, "90+": at least that many)."""
    views = [item_view(payload, timezone) for payload in payloads]
    unread = [v for v in views if v["unread"]]
    more = max(0, unread_count - len(unread))
    return {
        "unread": unread,
        "earlier": [v for v in views if not v["unread"]],
        "unread_label": count_label(unread_count),
        "more_unread": more,
        "more_unread_label": f"{more}+" if unread_count >= UNREAD_COUNT_LIMIT else str(more),
    }


def inbox_path(status: str, type_: str) -> str:
    """The inbox page under these filters, for a form that lands back on it; values that are no
    filter are dropped (never echoed into a Location)."""
    status = status if status in STATUSES else "all"
    type_ = type_ if type_ in NOTIFICATION_TYPES else ""
    if status == "all" and not type_:
        return "/notifications"
    return "/notifications?" + urlencode({"status": status, "type": type_})
