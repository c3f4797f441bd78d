"""The operations page's arithmetic on samples (webapp.ops.figures): cluster-wide figures from the
cumulative counters and gauges each process recorded, per-minute series for the sparklines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from webapp.ops.figures import BUCKETS, Sample, aggregate, quantile, sparkline
from webapp.ops.views import ops_view

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL = 10.0
LONG_AGO = NOW - timedelta(days=1)  # processes that were running long before the hour shown


def counters(created: float = 0, live: float = 0, delivered: float = 0, latencies: list[float] | None = None):
    """A process's cumulative counters, with its delivery histogram built from latencies (seconds)."""
    latencies = latencies or []
    figures = {"created": created, "live": live, "delivered": delivered}
    for le in BUCKETS:
        figures[f"le.{le}"] = sum(1 for latency in latencies if latency <= float(le))
    return figures


def sample(process: str, seconds_ago: float, started_at: datetime = LONG_AGO, kind: str = "web", **figures):
    return Sample(
        process=process,
        kind=kind,
        started_at=started_at,
        taken_at=NOW - timedelta(seconds=seconds_ago),
        figures=figures,
    )


def test_connections_are_summed_over_the_processes_heard_from_lately():
    samples = [
        sample("web-1", 5, **{"open.sse_html": 2, "open.sse_json": 1, "open.cable": 0}),
        sample("web-2", 8, **{"open.sse_html": 3, "open.sse_json": 0, "open.cable": 4}),
        # web-2's older sample: only the newest of each process counts
        sample("web-2", 18, **{"open.sse_html": 30, "open.sse_json": 0, "open.cable": 0}),
    ]
    figures = aggregate(samples, NOW, INTERVAL)
    assert figures.connections == {"sse_html": 5, "sse_json": 1, "cable": 4}
    assert figures.processes == {"web": 2}


def test_a_process_silent_for_more_than_three_intervals_no_longer_counts():
    samples = [
        sample("web-1", 5, **{"open.sse_html": 2, "open.sse_json": 0, "open.cable": 0}),
        sample("web-gone", 3 * INTERVAL + 1, **{"open.sse_html": 7, "open.sse_json": 0, "open.cable": 0}),
    ]
    figures = aggregate(samples, NOW, INTERVAL)
    assert figures.connections["sse_html"] == 2
    assert figures.processes == {"web": 1}
    # It still counted in the minute it was heard in.
    assert figures.series["connections"][-1] == 9


def test_notifications_per_minute_add_up_the_increments_of_every_process():
    samples = [
        sample("web-1", 70, **counters(created=100)),
        sample("web-1", 30, **counters(created=110)),
        sample("web-1", 1, **counters(created=125)),
        sample("worker-1", 65, kind="worker", **counters(created=1000)),
        sample("worker-1", 5, kind="worker", **counters(created=1040)),
    ]
    figures = aggregate(samples, NOW, INTERVAL)
    # within the last 60 s: web-1 +15 (110→125; the +10 was 30 s ago, counted too), worker +40
    assert figures.notifications_per_minute == (125 - 100) + (1040 - 1000)
    assert figures.series["notifications"][-1] == figures.notifications_per_minute
    assert figures.processes == {"web": 1, "worker": 1}


def test_a_counter_reset_by_a_restart_counts_from_zero_not_as_a_negative_rate():
    restarted = NOW - timedelta(seconds=25)
    samples = [
        sample("web-1", 50, **counters(created=500)),
        # the same process name after a restart: counting began again from zero
        sample("web-1", 20, started_at=restarted, **counters(created=3)),
        sample("web-1", 10, started_at=restarted, **counters(created=7)),
    ]
    figures = aggregate(samples, NOW, INTERVAL)
    assert figures.notifications_per_minute == 7


def test_a_counter_that_went_down_is_taken_as_a_reset_even_with_the_same_start_time():
    samples = [
        sample("web-1", 50, **counters(created=500)),
        sample("web-1", 20, **counters(created=4)),
        sample("web-1", 10, **counters(created=6)),
    ]
    assert aggregate(samples, NOW, INTERVAL).notifications_per_minute == 6


def test_a_process_born_within_the_window_counts_from_zero_and_an_old_one_from_its_first_sample():
    born = NOW - timedelta(seconds=40)
    samples = [
        sample("web-new", 30, started_at=born, **counters(created=12)),  # all 12 happened in range
        sample("web-old", 30, **counters(created=900)),  # a baseline: its 900 are older than the hour
        sample("web-old", 10, **counters(created=905)),
    ]
    assert aggregate(samples, NOW, INTERVAL).notifications_per_minute == 12 + 5


def test_the_per_minute_series_puts_each_increment_in_its_minute():
    samples = [sample("web-1", 60 * m + 30, **counters(created=100 - 10 * m)) for m in range(5, -1, -1)]
    series = aggregate(samples, NOW, INTERVAL).series["notifications"]
    assert len(series) == 60
    assert series[-5:] == [10, 10, 10, 10, 10]
    assert series[-6] is None  # the first sample is only a baseline: nothing known before it
    assert all(value is None for value in series[:-6])


def test_delivery_success_rate_is_delivered_within_five_seconds_over_live_recipients():
    samples = [
        sample("web-1", 200, **counters(live=10, delivered=10, latencies=[0.1] * 10)),
        sample("web-1", 5, **counters(live=30, delivered=29, latencies=[0.1] * 10 + [0.2] * 16 + [7.0] * 3)),
        sample("web-2", 200, **counters(live=0)),
        sample("web-2", 5, **counters(live=20, delivered=20, latencies=[0.05] * 20)),
    ]
    figures = aggregate(samples, NOW, INTERVAL)
    # increments: web-1 live +20, within 5 s +16 (3 were late); web-2 live +20, within 5 s +20
    assert figures.delivery_rate == pytest.approx((16 + 20) / (20 + 20))


def test_no_live_recipients_means_no_rate_rather_than_a_division_by_zero():
    samples = [sample("web-1", 30, **counters()), sample("web-1", 5, **counters(created=3))]
    figures = aggregate(samples, NOW, INTERVAL)
    assert figures.delivery_rate is None
    assert figures.p95_seconds is None


def test_p95_comes_from_the_bucket_increments_summed_over_processes():
    samples = [
        # 100 deliveries before the window shown for p95: they must not weigh in
        sample("web-1", 3000, **counters(latencies=[20.0] * 100)),
        sample("web-1", 100, **counters(latencies=[20.0] * 100 + [0.02] * 50)),
        sample("web-2", 3000, **counters()),
        sample("web-2", 100, **counters(latencies=[0.3] * 40 + [3.0] * 10)),
    ]
    figures = aggregate(samples, NOW, INTERVAL)
    increments = {le: 0.0 for le in BUCKETS}
    for latency in [0.02] * 50 + [0.3] * 40 + [3.0] * 10:
        for le in BUCKETS:
            if latency <= float(le):
                increments[le] += 1
    expected = quantile(0.95, [(float(le), count) for le, count in increments.items()])
    assert figures.p95_seconds == pytest.approx(expected)
    # 95 of 100 lie within 2 s, the 95th falls in the (2, 5] bucket with the 10 slow ones
    assert 2.0 < figures.p95_seconds <= 5.0


def test_quantile_interpolates_within_its_bucket_like_prometheus():
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    # 95th of 100: the 5th of the 10 in (0.5, 1.0]
    assert quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * 5 / 10)
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    # beyond the largest finite bound: that bound, as histogram_quantile answers
    assert quantile(0.99, [(1.0, 10.0), (float("inf"), 100.0)]) == 1.0
    assert quantile(0.95, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_cluster_figures_come_from_the_newest_sample_that_carries_them():
    samples = [
        sample("web-1", 12, outbox_lag=4.0, queue_depth=9, dead_letters=1),
        sample("web-2", 3, outbox_lag=2.5, queue_depth=7, dead_letters=2),
        sample("worker-1", 1, kind="worker", **counters()),  # workers do not read them
    ]
    figures = aggregate(samples, NOW, INTERVAL)
    assert (figures.outbox_lag, figures.queue_depth, figures.dead_letters) == (2.5, 7, 2)


def test_unknown_cluster_figures_stay_unknown():
    figures = aggregate([sample("web-1", 3, **counters())], NOW, INTERVAL)
    assert (figures.outbox_lag, figures.queue_depth, figures.dead_letters) == (None, None, None)
    assert aggregate([], NOW, INTERVAL).processes == {}


def test_sparkline_points_span_the_box_and_name_min_max_and_now():
    line = sparkline([0, 5, None, 10, 5], width=100, height=20)
    assert line.segments == ["1.0,19.0 25.5,10.0", "74.5,1.0 99.0,10.0"]
    assert (line.low, line.high, line.last) == (0, 10, 5)


def test_sparkline_of_a_flat_or_empty_series():
    # the baseline is zero, so a steady figure draws along the top and nothing along the bottom
    assert sparkline([3, 3, 3], width=100, height=20).segments == ["1.0,1.0 50.0,1.0 99.0,1.0"]
    assert sparkline([0, 0], width=100, height=20).segments == ["1.0,19.0 99.0,19.0"]
    lone = sparkline([None, 4, None], width=100, height=20)
    assert len(lone.segments) == 1  # a single known minute still shows (as a short dash)
    assert sparkline([None, None], width=100, height=20).segments == []


def test_each_sparkline_says_in_words_what_it_draws():
    samples = [sample("web-1", 60 * m + 30, **counters(created=100 + 10 * (5 - m) ** 2)) for m in range(5, -1, -1)]
    figures = aggregate(samples, NOW, INTERVAL)
    cards = {card.key: card for card in ops_view(figures, INTERVAL).cards}
    # increments per minute: 10, 30, 50, 70, 90 (the first sample is the baseline)
    assert cards["notifications"].value == "90"
    assert cards["notifications"].line_text == (
        "Notifications per minute, last 60 minutes per minute: min 10, max 90, now 90"
    )
    assert cards["delivery_rate"].line is None  # nobody had a live stream: nothing to draw
    assert cards["delivery_rate"].value == "—"
    assert cards["processes"].value == "1"
