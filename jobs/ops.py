"""The jobs' side of the operations page (webapp.ops).

`broker_backlog` reads the job queues' depth and dead letters from this process's broker: the
web processes get it from the composition root (tidings/app.py), since webapp never imports the
jobs. `SampleWorker` makes every `dramatiq jobs` process record its own samples (the
notifications its fan-outs create count there); embedded workers count into the web process's
metrics, which the web process samples itself.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware
from redis.exceptions import RedisError

from jobs import runtime
from webapp.ops.sampling import OpsSampler

log = logging.getLogger("tidings.jobs")


def broker_backlog() -> dict[str, int]:
    """{"queue_depth": messages enqueued and not yet done (waiting, delayed for a retry, or
    running), "dead_letters": messages in the dead-letter queues}; {} when the broker cannot say.
    Blocking (Redis): call it off the event loop."""
    broker = dramatiq.get_broker()
    queues = sorted(q for q in broker.get_declared_queues() if not q.endswith(".DQ"))
    if isinstance(broker, RedisBroker):
        # Dramatiq's Redis layout, under the deployment's JOBS_NAMESPACE: `<ns>:<queue>.msgs` holds
        # every message not yet acknowledged (`.DQ.msgs` the delayed ones), `<ns>:<queue>.XQ` the
        # dead-lettered ids (kept 7 days).
        prefix = f"{broker.namespace}:"
        try:
            with broker.client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.hlen(f"{prefix}{queue}.msgs")
                    pipe.hlen(f"{prefix}{queue}.DQ.msgs")
                    pipe.zcard(f"{prefix}{queue}.XQ")
                replies = pipe.execute()
        except RedisError as exc:
            log.warning("could not read the job queues' backlog: %s", exc)
            return {}
        return {"queue_depth": sum(replies[0::3]) + sum(replies[1::3]), "dead_letters": sum(replies[2::3])}
    if isinstance(broker, StubBroker):  # embedded mode: Python queues in this process
        depth = sum(broker.queues[q].unfinished_tasks + broker.queues[f"{q}.DQ"].unfinished_tasks for q in queues)
        return {"queue_depth": depth, "dead_letters": sum(len(broker.dead_letters_by_queue[q]) for q in queues)}
    return {}


class SampleWorker(Middleware):
    """A `dramatiq jobs` process records its samples on the event loop its async actors use."""

    sampler: OpsSampler | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        settings = runtime.settings()
        loop_thread = get_event_loop_thread()
        if not settings.redis_url or loop_thread is None:
            return  # embedded: the web process samples the metrics its worker threads count into

        async def start() -> OpsSampler:
            # On the actors' loop, with the engine the actors use there.
            sampler = OpsSampler("worker", runtime.sessionmaker(), settings.ops_sample_seconds)
            await sampler.start()
            return sampler

        SampleWorker.sampler = loop_thread.run_coroutine(start())

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        if SampleWorker.sampler is not None and loop_thread is not None:
            loop_thread.run_coroutine(SampleWorker.sampler.stop())
            SampleWorker.sampler = None
