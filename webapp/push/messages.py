"""What one push says, and how the push service should treat it (RFC 8030): how long to keep it
for a device that is offline (TTL), how soon to wake the device for it (Urgency), and which
earlier undelivered push it replaces (Topic), so a phone that was offline gets the latest news
of an event, not a pile.

| type | Urgency | TTL |
| --- | --- | --- |
| event_reminder | high | until the event starts (at most a day) |
| event_cancelled, payment_failed | high | 1 day |
| general, review_request | low | 3 days |
| every other type | normal | 1 day |

An item with `expires_at` never lives past it. Several items go as one summary push
("3 new notifications") with the highest urgency and the longest TTL among them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from webapp.notifications.models import Notification
from webapp.push.services import event_of

Urgency = Literal["very-low", "low", "normal", "high"]
_RANK: dict[Urgency, int] = {"very-low": 0, "low": 1, "normal": 2, "high": 3}
TOPIC_MAX = 32  # RFC 8030 §5.4: at most 32 characters of the URL-safe base64 alphabet
TITLE_LIMIT = 120
BODY_LIMIT = 300  # a payload must stay under 4 KiB once encrypted, and a system notification shows little
SUMMARY_TITLES = 3


@dataclass(frozen=True, slots=True)
class PushRule:
    urgency: Urgency
    ttl: timedelta
    until_event_start: bool = False  # a reminder of an event that started is worth nothing


DEFAULT_RULE = PushRule("normal", timedelta(days=1))
RULES: dict[str, PushRule] = {
    "event_reminder": PushRule("high", timedelta(days=1), until_event_start=True),
    "event_cancelled": PushRule("high", timedelta(days=1)),
    "payment_failed": PushRule("high", timedelta(days=1)),
    "general": PushRule("low", timedelta(days=3)),
    "review_request": PushRule("low", timedelta(days=3)),
}


@dataclass(frozen=True, slots=True)
class PushMessage:
    payload: dict[str, Any]  # JSON for the service worker: title, body, url, tag, icon
    ttl: int  # seconds
    urgency: Urgency
    topic: str | None

    @property
    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {"Urgency": self.urgency}
        if self.topic:
            headers["Topic"] = self.topic
        return headers


def ttl_of(item: Notification, now: datetime, event_starts: dict[int, datetime]) -> int:
    """Seconds the push may wait for an offline device; 0 or less: not worth sending."""
    rule = RULES.get(item.type, DEFAULT_RULE)
    ends = [now + rule.ttl]
    if item.expires_at is not None:
        ends.append(item.expires_at)
    event_id = event_of(item)
    if rule.until_event_start and event_id is not None and event_id in event_starts:
        ends.append(event_starts[event_id])
    return int((min(ends) - now).total_seconds())


def topic_of(item: Notification) -> str | None:
    """`event-<id>` for anything about an event (its reminders, changes, cancellation, bookings);
    else its subject (`invitation-7`); None when it has neither, so it replaces nothing."""
    event_id = event_of(item)
    if event_id is not None:
        topic = f"event-{event_id}"
    elif item.subject_kind and item.subject_id is not None:
        topic = f"{item.subject_kind}-{item.subject_id}"
    else:
        return None
    return re.sub(r"[^A-Za-z0-9_-]", "", topic)[:TOPIC_MAX] or None


def build_message(
    items: Sequence[Notification],
    *,
    now: datetime,
    event_starts: dict[int, datetime],
    open_url: Callable[[Notification], str],
    summary_url: str,
    icon_url: str,
) -> PushMessage | None:
    """One push for `items`: the item itself (opened through `open_url`, a signed link), or a
    summary of several linking to the inbox. None when none is worth sending any more."""
    timed = [(item, ttl) for item in items if (ttl := ttl_of(item, now, event_starts)) > 0]
    if not timed:
        return None
    urgency = max((RULES.get(item.type, DEFAULT_RULE).urgency for item, _ in timed), key=_RANK.__getitem__)
    ttl = max(ttl for _, ttl in timed)
    topics = {topic_of(item) for item, _ in timed}
    if len(timed) == 1:
        item = timed[0][0]
        topic = topic_of(item)
        payload = {
            "title": _cut(item.title, TITLE_LIMIT),
            "body": _cut(item.body, BODY_LIMIT),
            "url": open_url(item),
            "tag": topic or f"notification-{item.id}",
            "notification_id": item.id,
        }
    else:
        titles = [_cut(item.title, TITLE_LIMIT) for item, _ in timed]
        more = len(titles) - SUMMARY_TITLES
        body = "\n".join(titles[-SUMMARY_TITLES:][::-1]) + (f"\n…and {more} more" if more > 0 else "")
        # Items of one event keep its topic; a mix is one "summary" topic, so a newer summary
        # replaces an older one still waiting (the inbox has them all).
        topic = topics.pop() if len(topics) == 1 else "summary"
        payload = {
            "title": f"{len(timed)} new notifications",
            "body": _cut(body, BODY_LIMIT),
            "url": summary_url,
            "tag": topic or "summary",
        }
    payload["icon"] = icon_url
    return PushMessage(payload=payload, ttl=ttl, urgency=urgency, topic=topic)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
