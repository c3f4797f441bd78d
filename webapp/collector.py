"""How often Python's cyclic garbage collector runs in a Tidings process (web or jobs)."""

from __future__ import annotations

import gc

# Every collection of an older generation walks every object that generation holds. A web process
# with thousands of open streams and a jobs process fanning out to thousands of recipients both
# hold large heaps and allocate fast: with Python's default thresholds (700, 10, 10) a broadcast
# to 10,000 open streams spent a third of its time collecting (bench/run.py: p95 4.5 -> 3.0 s),
# and a fan-out to 10,000 attendees 0.8-0.9 s of its 2-3 s (bench/fanout.py). The youngest
# generation is now collected every 100,000 allocations, the older ones less often; reference
# counting still frees everything that is not in a cycle at once.
THRESHOLDS = (100_000, 50, 100)


def collect_less_often() -> None:
    gc.set_threshold(*THRESHOLDS)
