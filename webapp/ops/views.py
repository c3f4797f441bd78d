"""What the operations page shows of the figures: one card per figure, its value as text, and a
sparkline of the last hour with a text alternative (min, max, now) for those who cannot see it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from webapp.ops.figures import MINUTES, RATIO_MINUTES, SILENT_AFTER, OpsFigures, Sparkline, sparkline

SPARK_WIDTH, SPARK_HEIGHT = 120, 28
TRANSPORT_LABELS = (("sse_html", "Pages (SSE)"), ("sse_json", "API (SSE)"), ("cable", "/cable"))
NO_VALUE = "—"
UNIT = "\u00a0"  # a number and its unit stay on one line


def count(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:,.0f}"


def percent(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value * 100:.1f}{UNIT}%"


def seconds(value: float | None) -> str:
    if value is None:
        return NO_VALUE
    if value < 10:
        return f"{value:.2f}{UNIT}s"
    if value < 120:
        return f"{value:.0f}{UNIT}s"
    return f"{value / 60:.1f}{UNIT}min"


@dataclass(frozen=True)
class Card:
    key: str
    label: str
    value: str
    hint: str
    line: Sparkline | None = None
    line_text: str = ""
    # (name, label, count): connections by transport, processes by kind
    breakdown: list[tuple[str, str, int]] = field(default_factory=list)
    breakdown_attribute: str = "transport"


def _card(
    key: str,
    label: str,
    now: float | None,
    series: list[float | None],
    shown: Callable[[float | None], str],
    hint: str,
    breakdown: list[tuple[str, str, int]] | None = None,
) -> Card:
    line = sparkline(series, SPARK_WIDTH, SPARK_HEIGHT)
    if line.segments:
        summary = f"min {shown(line.low)}, max {shown(line.high)}, now {shown(now)}"
    else:
        summary = "no data yet"
    text = f"{label}, last {MINUTES} minutes per minute: {summary}"
    return Card(key, label, shown(now), hint, line if line.segments else None, text, breakdown or [])


@dataclass(frozen=True)
class OpsView:
    cards: list[Card]
    reporting: int  # processes heard from lately
    silent_after_seconds: float
    updated: str  # when the newest sample was taken (ISO), "" if none


def ops_view(figures: OpsFigures, interval_seconds: float) -> OpsView:
    s = figures.series
    total_open = sum(figures.connections.values())
    cards = [
        _card(
            "connections",
            "Open connections",
            total_open,
            s["connections"],
            count,
            "SSE streams and /cable sockets, all web processes",
            breakdown=[(name, label, figures.connections.get(name, 0)) for name, label in TRANSPORT_LABELS],
        ),
        _card(
            "notifications",
            "Notifications per minute",
            figures.notifications_per_minute,
            s["notifications"],
            count,
            f"created in the last 60{UNIT}s, by every process",
        ),
        _card(
            "delivery_rate",
            "Delivered within 5 s",
            figures.delivery_rate,
            s["delivery_rate"],
            percent,
            f"of notifications to recipients with a live stream, last {RATIO_MINUTES}{UNIT}min",
        ),
        _card(
            "p95",
            "p95 delivery latency",
            figures.p95_seconds,
            s["p95"],
            seconds,
            f"from commit to the first live write, last {RATIO_MINUTES}{UNIT}min",
        ),
        _card(
            "outbox_lag",
            "Outbox lag",
            figures.outbox_lag,
            s["outbox_lag"],
            seconds,
            "age of the oldest follow-up job not yet done",
        ),
        _card(
            "queue_depth",
            "Queue depth",
            figures.queue_depth,
            s["queue_depth"],
            count,
            "jobs waiting or running in the job queues",
        ),
        _card(
            "dead_letters",
            "Dead letters",
            figures.dead_letters,
            s["dead_letters"],
            count,
            "jobs given up on, kept in the dead-letter queue",
        ),
    ]
    reporting = sum(figures.processes.values())
    cards.append(
        Card(
            "processes",
            "Processes reporting",
            count(reporting),
            f"heard from within the last {SILENT_AFTER * interval_seconds:g}{UNIT}s",
            breakdown=[(kind, kind, n) for kind, n in sorted(figures.processes.items())],
            breakdown_attribute="kind",
        )
    )
    return OpsView(
        cards=cards,
        reporting=reporting,
        silent_after_seconds=SILENT_AFTER * interval_seconds,
        updated=figures.newest.isoformat() if figures.newest else "",
    )
