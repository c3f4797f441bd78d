"""Routes that answer a probe (a load balancer, an orchestrator's liveness check), not a visitor.

A route handler marks itself with `opt={PROBE: True}`. The middlewares that serve a visitor (the
request guard, the session and its refresh, the CSRF cookie, flash, the retry of conflicting
transactions) then stay out of it: a probe says that the process answers and touches nothing
else, so a browser's cookies on it neither rotate a session nor need the database. Without them
the probe costs half the CPU it did (issue 12: `/healthz` against the floor's hello).
"""

from __future__ import annotations

from litestar.types import Scope

PROBE = "probe"


def is_probe(scope: Scope) -> bool:
    return bool(scope["route_handler"].opt.get(PROBE))
