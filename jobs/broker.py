"""The one Dramatiq broker of this process, configured before any actor is declared.

Scaled mode (REDIS_URL set): a Redis broker; `dramatiq jobs` runs worker processes.
Embedded mode (no REDIS_URL): an in-process broker whose worker threads run inside the web
process (see jobs.embedded). Either way: async actors on the AsyncIO middleware, retries with
exponential backoff and a cap, time limits, and a dead-letter queue that is logged.
An error that no retry can cure (bad data: a value the database refuses, a validation failure)
is not retried: the message goes to the dead-letter queue at once.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from sqlalchemy.exc import DataError

from webapp.errors import ValidationFailed
from webapp.settings import get_settings

log = logging.getLogger("tidings.jobs")

MAX_RETRIES = int(os.environ.get("JOBS_MAX_RETRIES", "8"))
MIN_BACKOFF_MS = int(os.environ.get("JOBS_MIN_BACKOFF_MS", "500"))
MAX_BACKOFF_MS = int(os.environ.get("JOBS_MAX_BACKOFF_MS", "300000"))
TIME_LIMIT_MS = int(os.environ.get("JOBS_TIME_LIMIT_MS", "120000"))
# How long before the messages of a worker that vanished are handed to another (Redis).
HEARTBEAT_TIMEOUT_MS = int(os.environ.get("JOBS_HEARTBEAT_TIMEOUT_MS", "15000"))
# Out of 100,000 fetches, how many also requeue the messages of dead workers (Redis).
MAINTENANCE_CHANCE = int(os.environ.get("JOBS_MAINTENANCE_CHANCE", "1000"))
# Failures that come out the same on every run: retrying them for hours only hides them.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (DataError, ValidationFailed)


class DeadLetterLog(Middleware):
    """Says loudly (once, at ERROR, with the actor and the message id) when a message gives up
    and lands in the dead-letter queue, counts it, and marks its outbox row failed so that the
    scheduler stops handing it over. Every actor treats PERMANENT_ERRORS as Dramatiq's `throws`:
    such a message is failed on its first error, and the worker logs that error only at INFO."""

    dead_lettered = 0  # in this process since it started

    def before_declare_actor(self, broker: dramatiq.Broker, actor: Any) -> None:
        actor.options.setdefault("throws", PERMANENT_ERRORS)

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if exception is not None and isinstance(exception, PERMANENT_ERRORS):
            # Retries leaves no traceback for a message it fails at once: keep why, for the log.
            message.options["permanent_error"] = f"{type(exception).__name__}: {exception}".splitlines()[0][:500]

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        DeadLetterLog.dead_lettered += 1
        last_line = ((message.options.get("traceback") or "").strip().splitlines() or ["no traceback"])[-1]
        reason = message.options.get("permanent_error")
        log.error(
            "job %s (%s) moved to the dead-letter queue %s: %s (%s dead-lettered since start)",
            message.message_id,
            message.actor_name,
            "without retrying (a permanent error)" if reason else f"after {message.options.get('retries', 0)} retries",
            reason or last_line,
            DeadLetterLog.dead_lettered,
        )
        outbox_id = message.kwargs.get("outbox_id")
        if outbox_id is None:
            return
        from dramatiq.asyncio import get_event_loop_thread

        from jobs import runtime  # not at import time: the broker is configured before anything else

        loop_thread = get_event_loop_thread()
        try:
            if loop_thread is None:
                raise RuntimeError("no event loop thread")
            loop_thread.run_coroutine(runtime.mark_failed(int(outbox_id)))
        except Exception:  # noqa: BLE001 - the row then runs out of attempts in the scheduler instead
            log.exception("could not mark outbox message %s failed", outbox_id)


def _middleware() -> list[Middleware]:
    return [
        AgeLimit(),
        TimeLimit(time_limit=TIME_LIMIT_MS),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=MAX_RETRIES, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS),
        AsyncIO(),
        DeadLetterLog(),
    ]


def build_broker(redis_url: str | None) -> dramatiq.Broker:
    if redis_url:
        settings = get_settings()
        return RedisBroker(  # type: ignore[no-untyped-call]
            # Our own client: with `url=` Dramatiq builds a pool without timeouts, and a hung
            # Redis would then hold a sender (or a worker) forever.
            client=redis.Redis.from_url(redis_url, **settings.redis_options),
            middleware=_middleware(),
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=MAINTENANCE_CHANCE,
            # The deployment's namespace (JOBS_NAMESPACE, else derived from REDIS_NAMESPACE):
            # separate deployments (or test runs) can share one Redis.
            namespace=settings.jobs_namespace,
        )
    return StubBroker(middleware=_middleware())


broker = build_broker(os.environ.get("REDIS_URL") or None)
dramatiq.set_broker(broker)
