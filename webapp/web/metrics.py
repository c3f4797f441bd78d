"""`GET /metrics`: this process's Prometheus metrics (webapp.metrics), for the operator only.

With METRICS_TOKEN set, the scraper sends `Authorization: Bearer <token>`; without it only a
client on this machine (a loopback address, after TRUSTED_PROXIES) may read them, so a public
deployment never shows its numbers to the world by accident."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webapp import metrics
from webapp.http import client_address, error_json
from webapp.outbox.services import oldest_pending_age


def _allowed(request: Request[Any, Any, Any]) -> bool:
    token = request.app.state.settings.metrics_token
    if token:
        sent = request.headers.get("authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:
        return False


@get("/metrics", include_in_schema=False, cache_control=None)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    if not _allowed(request):
        return error_json(
            403, "forbidden", "Metrics are for the operator: send METRICS_TOKEN or scrape from this host."
        )
    async with request.app.state.reader_sessionmaker() as session:
        metrics.OUTBOX_OLDEST_PENDING.set(await oldest_pending_age(session))
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
