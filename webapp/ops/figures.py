"""The operations page's figures, from the samples every process records (webapp.ops.sampling).

Each sample holds one process's cumulative counters (notifications created, live recipients,
the delivery histogram's buckets) and its gauges (open connections), and, from web processes,
the deployment-wide gauges they read (outbox lag, queue depth, dead letters). From these:

- "now": the newest sample of every process heard from within SILENT_AFTER intervals (a process
  that fell silent, e.g. stopped or crashed, no longer counts); deployment-wide gauges from the
  newest sample that carries them.
- rates: each process's counter increments between its consecutive samples, summed over the
  processes. A counter that went down, or a new start time under the same process name, is a
  restart: that sample's values count from zero. A process's first sample is only a baseline,
  unless the process started within the samples read (then all it counted is recent).
- per-minute series of the last hour, for the sparklines: minute i covers (now - (60 - i) min,
  now - (59 - i) min], so the last minute is the same 60 s the "now" rate looks at.

Pure functions on plain data: the page reads the samples (webapp.ops.store) and hands them here.
"""

from __future__ import annotations

import math
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from webapp.metrics import DELIVERY_BUCKETS, TRANSPORTS

MINUTES = 60
READ_MINUTES = MINUTES + 1  # the minute before the hour holds each process's baseline
SILENT_AFTER = 3  # sample intervals
RATIO_MINUTES = 5  # the success rate and p95 look at this many minutes, as rate(...[5m]) would
# The delivery histogram's upper bounds as sample keys (`le.<bound>`), as Prometheus writes them.
BUCKETS: tuple[str, ...] = (*(f"{bound:g}" for bound in DELIVERY_BUCKETS), "+Inf")
WITHIN_FIVE_SECONDS = "le.5"
CLUSTER_GAUGES = ("outbox_lag", "queue_depth", "dead_letters")


@dataclass(frozen=True)
class Sample:
    process: str
    kind: str  # web, worker, scheduler
    started_at: datetime
    taken_at: datetime
    figures: Mapping[str, Any]

    @cached_property
    def counters(self) -> list[float]:
        """The counters in COUNTERS order (worked out once: the page keeps its samples)."""
        figures = self.figures
        return [float(figures.get(key, 0.0)) for key in COUNTERS]


@dataclass(frozen=True)
class OpsFigures:
    processes: dict[str, int]  # processes heard from lately, by kind
    connections: dict[str, int]  # open, by transport
    notifications_per_minute: float | None
    delivery_rate: float | None  # delivered within 5 s ÷ live recipients, last RATIO_MINUTES
    p95_seconds: float | None  # delivery latency, last RATIO_MINUTES
    outbox_lag: float | None
    queue_depth: int | None
    dead_letters: int | None
    newest: datetime | None  # the newest sample's time
    # Per minute over the last hour, oldest first; None where nothing is known.
    series: dict[str, list[float | None]] = field(default_factory=dict)


# The counters, in the order of the vectors the arithmetic below works on.
COUNTERS: tuple[str, ...] = ("created", "live", "delivered", *(f"le.{le}" for le in BUCKETS))
_COUNTER_SET = frozenset(COUNTERS)
_CREATED, _LIVE, _WITHIN_FIVE_SECONDS = (COUNTERS.index(key) for key in ("created", "live", WITHIN_FIVE_SECONDS))
_FIRST_BUCKET = COUNTERS.index(f"le.{BUCKETS[0]}")
_BOUNDS = [float(le) for le in BUCKETS]
Vector = list[float]


def is_counter(key: str) -> bool:
    return key in _COUNTER_SET


def _increments(samples: Iterable[Sample], read_from: datetime) -> list[tuple[datetime, Vector]]:
    """(time, counter increments) for every sample that follows a known earlier state."""
    by_process: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_process[sample.process].append(sample)
    increments = []
    for history in by_process.values():
        history.sort(key=lambda s: s.taken_at)
        previous: Sample | None = None
        before: Vector = []
        for sample in history:
            now = sample.counters
            if previous is None:
                if sample.started_at >= read_from:  # born in range: everything it counted is recent
                    increments.append((sample.taken_at, now))
            else:
                delta = [value - earlier for value, earlier in zip(now, before, strict=True)]
                restarted = sample.started_at != previous.started_at or min(delta) < 0
                increments.append((sample.taken_at, now if restarted else delta))
            previous, before = sample, now
    return increments


def _minute(now: datetime, moment: datetime) -> int | None:
    """Index 0..59 of the minute `moment` falls in (59: the last 60 s), None outside the hour."""
    age = (now - moment).total_seconds()
    if age < 0 or age >= MINUTES * 60:
        return None
    return MINUTES - 1 - int(age // 60)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram given as (upper bound, cumulative count) pairs, +Inf last,
    interpolated linearly within its bucket as Prometheus's histogram_quantile does."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the largest finite bound: that bound
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def _ratio_figures(total: Vector | None) -> tuple[float | None, float | None]:
    if not total:
        return None, None
    live = total[_LIVE]
    rate = min(1.0, total[_WITHIN_FIVE_SECONDS] / live) if live > 0 else None
    return rate, quantile(0.95, list(zip(_BOUNDS, total[_FIRST_BUCKET:], strict=True)))


def _add(into: Vector, delta: Vector) -> None:
    into[:] = map(operator.add, into, delta)


def _connections(sample: Sample) -> int:
    return sum(int(sample.figures.get(f"open.{transport}", 0)) for transport in TRANSPORTS)


def read_since(now: datetime) -> datetime:
    """The samples `aggregate` needs are those taken since this."""
    return now - timedelta(minutes=READ_MINUTES)


def aggregate(samples: Sequence[Sample], now: datetime, interval_seconds: float) -> OpsFigures:
    """The page's figures at `now` from the samples taken since `read_since(now)`."""
    read_from = read_since(now)
    increments = _increments(samples, read_from)

    # Counters: per minute, and over the last minute / the last RATIO_MINUTES for "now".
    per_minute: list[Vector | None] = [None] * MINUTES
    for moment, delta in increments:
        index = _minute(now, moment)
        if index is not None:
            into = per_minute[index]
            if into is None:
                per_minute[index] = list(delta)
            else:
                _add(into, delta)
    recent = [0.0] * len(COUNTERS)
    for minute in per_minute[-RATIO_MINUTES:]:
        if minute is not None:
            _add(recent, minute)
    last = per_minute[-1]

    # Gauges: per minute, each process's last sample in it; deployment-wide ones from the newest.
    last_in_minute: list[dict[str, Sample]] = [{} for _ in range(MINUTES)]
    newest_of: dict[str, Sample] = {}
    for sample in sorted(samples, key=lambda s: s.taken_at):
        index = _minute(now, sample.taken_at)
        if index is not None:
            last_in_minute[index][sample.process] = sample
        newest_of[sample.process] = sample
    silent_before = now - timedelta(seconds=SILENT_AFTER * interval_seconds)
    heard = [s for s in newest_of.values() if s.taken_at >= silent_before]

    def newest_cluster(pool: Iterable[Sample], key: str) -> float | None:
        carrying = [s for s in pool if s.figures.get(key) is not None]
        return float(max(carrying, key=lambda s: s.taken_at).figures[key]) if carrying else None

    processes: dict[str, int] = {}
    for sample in heard:
        processes[sample.kind] = processes.get(sample.kind, 0) + 1
    rate, p95 = _ratio_figures(recent)
    ratios = [_ratio_figures(m) for m in per_minute]
    series: dict[str, list[float | None]] = {
        "connections": [sum(map(_connections, m.values())) if m else None for m in last_in_minute],
        "notifications": [m[_CREATED] if m is not None else None for m in per_minute],
        "delivery_rate": [ratio[0] for ratio in ratios],
        "p95": [ratio[1] for ratio in ratios],
    }
    for key in CLUSTER_GAUGES:
        series[key] = [newest_cluster(m.values(), key) for m in last_in_minute]
    queue_depth, dead_letters = newest_cluster(heard, "queue_depth"), newest_cluster(heard, "dead_letters")
    return OpsFigures(
        processes=processes,
        connections={t: sum(int(s.figures.get(f"open.{t}", 0)) for s in heard) for t in TRANSPORTS},
        notifications_per_minute=last[_CREATED] if last is not None else None,
        delivery_rate=rate,
        p95_seconds=p95,
        outbox_lag=newest_cluster(heard, "outbox_lag"),
        queue_depth=None if queue_depth is None else int(queue_depth),
        dead_letters=None if dead_letters is None else int(dead_letters),
        newest=max((s.taken_at for s in samples), default=None),
        series=series,
    )


@dataclass(frozen=True)
class Sparkline:
    segments: list[str]  # SVG polyline points, one string per run of known values
    low: float | None  # the smallest and largest known values
    high: float | None
    last: float | None  # the newest known value


def sparkline(values: Sequence[float | None], width: float = 120, height: float = 28, pad: float = 1) -> Sparkline:
    """Points of a small line chart of `values` (gaps where None) in a width × height box, with
    zero at the bottom so that heights compare with nothing, not with the quietest minute."""
    known = [v for v in values if v is not None]
    if not known:
        return Sparkline([], None, None, None)
    floor, high = min(0.0, *known), max(known)
    span = (high - floor) or 1.0
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    segments: list[str] = []
    run: list[tuple[float, float]] = []
    for i, value in enumerate([*values, None]):
        if value is None:
            if len(run) == 1:  # one known minute alone: a short dash, so that it shows
                x, y = run[0]
                run = [(max(pad, x - 1), y), (min(width - pad, x + 1), y)]
            if run:
                segments.append(" ".join(f"{x:.1f},{y:.1f}" for x, y in run))
            run = []
            continue
        run.append((pad + i * step, height - pad - (value - floor) / span * (height - 2 * pad)))
    return Sparkline(segments, min(known), high, known[-1])
