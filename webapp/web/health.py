"""Liveness and readiness probes (Dockerfile HEALTHCHECK, compose healthchecks, load balancers).

`/health/live` says the process answers and touches nothing else, so a database outage does not
get every web process restarted. `/health/ready` says this process can do its work: the database
and, when configured, Redis answer within a short timeout; otherwise 503 naming the part that did
not, so a load balancer stops sending it traffic. `/healthz` stays as the old name of live."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, Response, get
from sqlalchemy import text

from webapp import metrics
from webapp.probes import PROBE

log = logging.getLogger("tidings.health")

# A probe that takes longer than this is a failed probe: the orchestrator's own timeout is longer.
READY_TIMEOUT_SECONDS = 2.0


@get(["/health/live", "/healthz"], include_in_schema=False, cache_control=None, opt={PROBE: True})
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def _database(request: Request[Any, Any, Any]) -> None:
    async with request.app.state.reader_sessionmaker() as session:
        await session.execute(text("SELECT 1"))


async def _redis(request: Request[Any, Any, Any]) -> None:
    await request.app.state.redis.ping()


async def _check(name: str, probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("readiness: %s did not answer within %s s", name, READY_TIMEOUT_SECONDS)
        result = "timeout"
    except Exception as exc:  # noqa: BLE001 - any failure of the dependency means not ready
        log.warning("readiness: %s failed: %s", name, type(exc).__name__)
        result = "unavailable"
    else:
        return "ok"
    if name == "redis":  # the database's errors are counted by the engine itself
        metrics.REDIS_ERRORS.labels("readiness").inc()
    return result


@get("/health/ready", include_in_schema=False)
async def ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    probes = {"database": _database(request)}
    if request.app.state.redis is not None:
        probes["redis"] = _redis(request)
    results = await asyncio.gather(*(_check(name, probe) for name, probe in probes.items()))
    checks = dict(zip(probes, results, strict=True))
    failing = [name for name, result in checks.items() if result != "ok"]
    if not failing:
        return Response({"status": "ok", "checks": checks})
    message = ", ".join(f"{name} {checks[name]}" for name in failing)
    return Response(
        {"error": {"code": "not_ready", "message": f"not ready: {message}"}, "checks": checks}, status_code=503
    )
