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
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import dramatiq
import redis
from dramatiq.asyncio import get_event_loop_thread
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
from prometheus_client import start_http_server
from sqlalchemy.exc import DataError

from jobs import runtime
from jobs.ops import SampleWorker
from webapp import logs, metrics
from webapp.collector import collect_less_often
from webapp.errors import ValidationFailed
from webapp.settings import Settings, SettingsError, get_settings

log = logging.getLogger("tidings.jobs")


def _settings() -> Settings:
    """The settings, or a one-line exit: `dramatiq jobs` imports this module, and a bad value
    there must read as a configuration error, not as a traceback."""
    try:
        return get_settings()
    except SettingsError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.stderr.flush()
        os._exit(2)  # not SystemExit: the import machinery of a worker process would print a traceback


_config = _settings()
MAX_RETRIES = _config.jobs_max_retries
MIN_BACKOFF_MS = _config.jobs_min_backoff_ms
MAX_BACKOFF_MS = _config.jobs_max_backoff_ms
TIME_LIMIT_MS = _config.jobs_time_limit_ms
# How long before the messages of a worker that vanished are handed to another (Redis).
HEARTBEAT_TIMEOUT_MS = _config.jobs_heartbeat_timeout_ms
# Out of 100,000 fetches, how many also requeue the messages of dead workers (Redis).
MAINTENANCE_CHANCE = _config.jobs_maintenance_chance
METRICS_PORT_TRIES = 16  # worker processes of one `dramatiq jobs`, at most, each on its own port
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
        loop_thread = get_event_loop_thread()
        try:
            if loop_thread is None:
                raise RuntimeError("no event loop thread")
            loop_thread.run_coroutine(runtime.mark_failed(int(outbox_id)))
        except Exception:  # noqa: BLE001 - the row then runs out of attempts in the scheduler instead
            log.exception("could not mark outbox message %s failed", outbox_id)


class JobMetrics(Middleware):
    """Counts failed runs, retries and dead letters by actor (webapp.metrics). Listed before
    Retries: `after_` hooks run in reverse order, so Retries has already re-enqueued the failed
    message or marked it failed when this one looks."""

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if exception is None:
            return
        metrics.JOB_FAILURES.labels(message.actor_name).inc()
        if not message.failed:
            metrics.JOB_RETRIES.labels(message.actor_name).inc()

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        metrics.JOB_DEAD_LETTERS.labels(message.actor_name).inc()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """A `dramatiq jobs` process serves its own metrics on WORKER_METRICS_PORT, or the next
        free port after it (`-p 2` takes P and P + 1). Embedded workers share the web /metrics."""
        settings = get_settings()
        if not (settings.redis_url and settings.worker_metrics_port):
            return
        for port in range(settings.worker_metrics_port, settings.worker_metrics_port + METRICS_PORT_TRIES):
            try:
                start_http_server(port, addr=settings.host, registry=metrics.REGISTRY)
            except OSError:
                continue
            log.info("worker metrics on http://%s:%s/metrics", settings.host, port)
            return
        log.error("no free port for the worker's metrics from %s on", settings.worker_metrics_port)


class OneStopPerSignal(Middleware):
    """A worker process of `dramatiq jobs` takes a SIGTERM that arrives twice at once as one stop.

    A supervisor that signals the whole process group (`kill -TERM -PGID`, systemd's default)
    reaches each worker process twice within milliseconds: directly, and forwarded by Dramatiq's
    main process. Dramatiq reads a second SIGTERM as "kill now" and calls sys.exit from the signal
    handler, which then waits forever for the worker threads it never stopped. So a repeat within
    DUPLICATE_SECONDS of the first is ignored; a later one still means "kill now"."""

    DUPLICATE_SECONDS = 1.0

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # Only in a `dramatiq jobs` worker process (Redis), never in a web process's embedded
        # worker, and only where signal handlers can be set.
        if not get_settings().redis_url or threading.current_thread() is not threading.main_thread():
            return
        dramatiq_handler = signal.getsignal(signal.SIGTERM)
        if not callable(dramatiq_handler):
            return
        first: float | None = None

        def once(signum: int, frame: FrameType | None) -> None:
            nonlocal first
            now = time.monotonic()
            if first is not None and now - first < self.DUPLICATE_SECONDS:
                return  # the same stop, heard from the group and from the main process
            first = first if first is not None else now
            dramatiq_handler(signum, frame)

        signal.signal(signal.SIGTERM, once)


class CollectLessOften(Middleware):
    """A `dramatiq jobs` worker process collects garbage as rarely as a web process: a fan-out to
    10,000 recipients allocates fast over a large heap (webapp.collector). The web process's
    embedded worker shares that process's setting."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        if get_settings().redis_url:
            collect_less_often()


class JobLogContext(Middleware):
    """Every line a job logs carries its message id (webapp.logs). The id is set in the worker
    thread before the actor runs; an async actor's task copies that context when it is started."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        logs.message_id.set(message.message_id)
        log.debug("job %s started", message.actor_name)

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        log.debug("job %s %s", message.actor_name, "failed" if exception else "finished")
        logs.message_id.set(None)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        logs.message_id.set(None)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        settings = get_settings()
        if settings.redis_url:  # a `dramatiq jobs` process: its CLI set the handlers up
            logs.adopt_handlers(settings.log_format)


def _middleware() -> list[Middleware]:
    return [
        AgeLimit(),
        TimeLimit(time_limit=TIME_LIMIT_MS),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        JobMetrics(),
        Retries(max_retries=MAX_RETRIES, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS),
        AsyncIO(),
        runtime.DisposeAtShutdown(),
        DeadLetterLog(),
        JobLogContext(),
        OneStopPerSignal(),
        CollectLessOften(),
        SampleWorker(),
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


broker = build_broker(_config.redis_url)
dramatiq.set_broker(broker)
