"""Prometheus metrics of this process (README "Monitoring").

Every web process serves its own registry at `/metrics`; every worker process its own exporter
port (jobs.metrics). A hot path only increments a counter or moves a gauge; anything that needs a
query (the outbox lag) is computed when Prometheus scrapes.

Labels stay bounded: transports, reasons and kinds from fixed sets, notification types from the
model's choices, route templates (never a raw path) and actor names; never a user id.

This module imports nothing of the app, so every layer may use it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from sqlalchemy import event
from sqlalchemy.orm import Session

# The `_created` timestamp series double every counter's output and no query here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)

TRANSPORTS = ("sse_html", "sse_json", "cable")


def _counter(name: str, documentation: str, *labels: str) -> Counter:
    return Counter(name, documentation, labels, registry=REGISTRY)


def _histogram(name: str, documentation: str, buckets: tuple[float, ...]) -> Histogram:
    return Histogram(name, documentation, buckets=buckets, registry=REGISTRY)


CONNECTIONS_OPEN = Gauge(
    "tidings_connections_open",
    "Open real-time connections in this process: SSE streams, /cable sockets",
    ["transport"],
    registry=REGISTRY,
)
CONNECTIONS_OPENED = _counter("tidings_connections_opened", "Real-time connections opened", "transport")
CONNECTIONS_CLOSED = _counter(
    "tidings_connections_closed",
    "Real-time connections closed, by reason: client_left, token_expiry, lifetime, slow_reader, "
    "shutdown, session_ended, database_unavailable",
    "transport",
    "reason",
)
CONNECTIONS_REFUSED = _counter(
    "tidings_connections_refused",
    "Real-time connections refused before they opened, by reason: auth, origin, cap",
    "transport",
    "reason",
)
RECONNECTS = _counter(
    "tidings_stream_reconnects",
    "Streams opened with a position to resume from (Last-Event-ID, ?last_event_id=, last_seq)",
    "transport",
)
REPLAYS = _counter("tidings_stream_replays", "Resumed streams that replayed missed notifications", "transport")
REPLAYED_ITEMS = _counter("tidings_stream_replayed_items", "Notifications sent by opening replays", "transport")
RESETS = _counter("tidings_stream_resets", "Resets sent (continuity could not be proven)", "transport")
STREAM_MESSAGES = _counter(
    "tidings_stream_messages",
    "Messages written to real-time connections, by kind (notification, count, read, archive, reset, heartbeat)",
    "transport",
    "kind",
)
NOTIFICATIONS_CREATED = _counter(
    "tidings_notifications_created", "Notifications committed by this process, by type", "type"
)
NOTIFICATIONS_DELIVERED = _counter(
    "tidings_notifications_delivered",
    "Notifications written live to at least one open stream of their recipient in this process",
)
LIVE_RECIPIENTS = _counter(
    "tidings_notifications_live_recipients",
    "Notifications whose recipient had a running stream in this process when their doorbell ring "
    "arrived: the denominator of the delivery success rate",
)
# Upper bounds (seconds) of the delivery histogram; 5 is the success rate's limit.
DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
DELIVERY_SECONDS = _histogram(
    "tidings_notification_delivery_seconds",
    "From a notification's creation in its committing transaction to its first live write",
    DELIVERY_BUCKETS,
)
NOTIFICATIONS_SEEN = _counter(
    "tidings_notifications_seen", "Notifications marked seen (shown in an opened dropdown), once each"
)
NOTIFICATIONS_READ = _counter(
    "tidings_notifications_read", "Notifications marked read by their recipient (one, or all), once each"
)
DOORBELL_PUBLISHED = _counter("tidings_doorbell_published", "Doorbell messages rung by this process")
DOORBELL_RECEIVED = _counter("tidings_doorbell_received", "Doorbell messages this process's hub received")
HTTP_RESPONSES = _counter(
    "tidings_http_responses",
    "HTTP responses, by route template (`unmatched` when no route matched) and status class",
    "route",
    "status",
)
UNHANDLED_EXCEPTIONS = _counter("tidings_unhandled_exceptions", "Exceptions no handler expected (answered 500)")
JOB_FAILURES = _counter("tidings_job_failures", "Job runs that raised", "actor")
JOB_RETRIES = _counter("tidings_job_retries", "Job runs scheduled again after a failure", "actor")
JOB_DEAD_LETTERS = _counter("tidings_job_dead_letters", "Jobs given up on (moved to the dead-letter queue)", "actor")
# Web Push (jobs/push.py): messages a push service accepted, sends that failed (status: it answered
# an error other than 404/410; timeout; network), and subscriptions removed because it answered
# 404/410 (the browser dropped them).
PUSH_SENT = _counter("tidings_push_sent", "Web Push messages accepted by a push service")
PUSH_FAILED = _counter(
    "tidings_push_failed", "Web Push sends that failed, by reason: status, timeout, network", "reason"
)
PUSH_SUBSCRIPTIONS_REMOVED = _counter(
    "tidings_push_subscriptions_removed", "Web Push subscriptions removed because their push service answered 404/410"
)
REMINDER_LATENESS = _histogram(
    "tidings_reminder_lateness_seconds",
    "Event reminders: sent time minus due time, observed when the send commits",
    (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)
# Where a Redis call can fail: the doorbell's publish and its listening connection, the shared rate
# limits, handing a job to the Redis broker, the readiness probe.
REDIS_OPERATIONS = ("doorbell_publish", "doorbell_listen", "rate_limit", "job_enqueue", "readiness")
REDIS_ERRORS = _counter(
    "tidings_redis_errors",
    "Redis calls that failed or timed out, by operation: " + ", ".join(REDIS_OPERATIONS),
    "operation",
)
# unavailable: cannot connect, connection lost, timed out; conflict: deadlock or serialization
# failure (the unit of work runs again); integrity and data: a constraint or a value refused.
DATABASE_ERROR_KINDS = ("unavailable", "conflict", "integrity", "data", "other")
DATABASE_ERRORS = _counter(
    "tidings_database_errors",
    "Database errors, by kind: " + ", ".join(DATABASE_ERROR_KINDS),
    "kind",
)
SCHEDULER_OUTCOMES = ("completed", "failed", "skipped")
SCHEDULER_TICKS = _counter(
    "tidings_scheduler_ticks",
    "Scheduler ticks, by outcome: completed, failed, skipped (another scheduler held the turn too long)",
    "outcome",
)
SCHEDULER_TICK_SECONDS = _histogram(
    "tidings_scheduler_tick_seconds",
    "How long a scheduler tick took, its hand-overs to the job queue included",
    (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SCHEDULER_RELAYED_KINDS = ("reminder", "review_fanout", "released_booking", "outbox_redelivery")
SCHEDULER_RELAYED = _counter(
    "tidings_scheduler_relayed",
    "What scheduler ticks handed on, by kind: due reminders and review fan-outs claimed, unpaid "
    "bookings released, unfinished outbox rows handed over again",
    "kind",
)
SCHEDULER_PURGED_KINDS = ("outbox", "reminders", "notifications")
SCHEDULER_PURGED = _counter(
    "tidings_scheduler_purged",
    "Rows the scheduler's retention deleted: completed outbox rows, sent reminders, expired notifications",
    "table",
)
OUTBOX_OLDEST_PENDING = Gauge(
    "tidings_outbox_oldest_pending_seconds",
    "Age of the oldest outbox row whose job has not completed (0 when none), read at scrape time",
    registry=REGISTRY,
)


# Every bounded label value shows from the start (at 0), so a dashboard never sees a missing series.
for _transport in TRANSPORTS:
    CONNECTIONS_OPEN.labels(_transport)
    CONNECTIONS_OPENED.labels(_transport)
    RECONNECTS.labels(_transport)
for _metric, _values in (
    (REDIS_ERRORS, REDIS_OPERATIONS),
    (DATABASE_ERRORS, DATABASE_ERROR_KINDS),
    (SCHEDULER_TICKS, SCHEDULER_OUTCOMES),
    (SCHEDULER_RELAYED, SCHEDULER_RELAYED_KINDS),
    (SCHEDULER_PURGED, SCHEDULER_PURGED_KINDS),
):
    for _value in _values:
        _metric.labels(_value)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


# Route templates times status classes: a bounded set. `labels()` validates and locks on every
# call, a tenth of a liveness probe's CPU; the child it returns is the same every time.
_response_counts: dict[tuple[str, int], Any] = {}


def count_response(route: str, status: int) -> None:
    key = (route, status // 100)
    child = _response_counts.get(key)
    if child is None:
        child = _response_counts.setdefault(key, HTTP_RESPONSES.labels(route, status_class(status)))
    child.inc()


def count_committed(messages: Iterable[Mapping[str, Any]]) -> None:
    """Counts the notifications among the doorbell messages of a committed transaction."""
    by_type: dict[str, int] = {}
    for message in messages:
        if message.get("type") == "new":
            kind = str(message.get("notification", {}).get("type", "unknown"))
            by_type[kind] = by_type.get(kind, 0) + 1
    for kind, count in by_type.items():
        NOTIFICATIONS_CREATED.labels(kind).inc(count)


def observe_delivery(notification: Mapping[str, Any]) -> None:
    NOTIFICATIONS_DELIVERED.inc()
    created = notification.get("created_at")
    if isinstance(created, str):
        try:
            DELIVERY_SECONDS.observe(max(0.0, time.time() - datetime.fromisoformat(created).timestamp()))
        except ValueError:
            pass


def observe_after_commit(session: Session, histogram: Histogram, value: float) -> None:
    """Observes `value` once the session's transaction commits (what it measures then happened);
    forgotten if it rolls back."""
    session.info.setdefault("metrics_pending", []).append((histogram, value))


@event.listens_for(Session, "after_commit")
def _observe_committed(session: Session) -> None:
    for histogram, value in session.info.pop("metrics_pending", ()):
        histogram.observe(value)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop("metrics_pending", None)
