"""The operations page's data: every process samples its own counters and gauges into the
database (sampling, store), and the page aggregates them over the deployment (figures)."""
