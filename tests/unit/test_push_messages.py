"""What a push says and how the push service should keep it: TTL, Urgency and Topic by type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from webapp.notifications.models import Notification
from webapp.push.messages import TOPIC_MAX, build_message, topic_of, ttl_of

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def item(**fields: Any) -> Notification:
    values: dict[str, Any] = {"id": 1, "user_id": 1, "seq": 1, "type": "booking_confirmed", "title": "T", "body": ""}
    values.update(fields)
    values.setdefault("data", {})
    return Notification(**values)


def message(*items: Notification, starts: dict[int, datetime] | None = None) -> Any:
    return build_message(
        items,
        now=NOW,
        event_starts=starts or {},
        open_url=lambda n: f"/n/{n.id}",
        summary_url="/notifications",
        icon_url="/i",
    )


def test_urgency_and_ttl_follow_the_type_table():
    assert (message(item(type="payment_failed")).urgency, message(item(type="payment_failed")).ttl) == ("high", 86400)
    assert (message(item(type="general")).urgency, message(item(type="general")).ttl) == ("low", 3 * 86400)
    assert (message(item(type="event_updated")).urgency, message(item(type="event_updated")).ttl) == ("normal", 86400)


def test_a_reminder_lives_only_until_its_event_starts_and_is_not_sent_after():
    reminder = item(type="event_reminder", subject_kind="event", subject_id=7)
    assert ttl_of(reminder, NOW, {7: NOW + timedelta(minutes=30)}) == 1800
    assert message(reminder, starts={7: NOW - timedelta(minutes=1)}) is None
    assert message(reminder, starts={7: NOW + timedelta(minutes=30)}).urgency == "high"


def test_an_item_never_outlives_its_expiry():
    assert message(item(expires_at=NOW + timedelta(minutes=5))).ttl == 300
    assert message(item(expires_at=NOW)) is None


def test_the_topic_is_the_event_or_the_subject_within_the_protocol_limits():
    assert topic_of(item(subject_kind="event", subject_id=2147483647)) == "event-2147483647"
    assert topic_of(item(subject_kind="booking", subject_id=3, data={"event_id": 9})) == "event-9"
    assert topic_of(item(subject_kind="invitation", subject_id=4)) == "invitation-4"
    assert topic_of(item()) is None
    long = topic_of(item(subject_kind="a very long kind of subject!", subject_id=1))
    assert long is not None and len(long) <= TOPIC_MAX and long.replace("-", "").replace("_", "").isalnum()


def test_a_long_body_is_cut_to_fit_a_push():
    sent = message(item(body="x" * 5000))
    assert len(sent.payload["body"]) <= 300 and sent.payload["body"].endswith("…")
