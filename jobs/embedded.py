"""Embedded mode (no REDIS_URL): the worker threads and the scheduler run inside the web process."""

from __future__ import annotations

import dramatiq
from dramatiq import Worker

from jobs import runtime, scheduler
from webapp.bookings.payment_gateway import PaymentGateway
from webapp.settings import Settings

# Stopping waits this long for the jobs in progress to end (a tick gets as long: app.py).
SHUTDOWN_GRACE_MS = 30_000


class EmbeddedJobs:
    def __init__(
        self,
        settings: Settings,
        session_factory: object,
        run_scheduler: bool = True,
        payment_gateway: PaymentGateway | None = None,
    ) -> None:
        runtime.configure(settings, payment_gateway)
        self.worker = Worker(dramatiq.get_broker(), worker_threads=settings.embedded_worker_threads, worker_timeout=100)
        self.session_factory = session_factory
        self.run_scheduler = run_scheduler
        self._scheduler = None

    def start(self) -> None:
        self.worker.start()
        if self.run_scheduler:
            self._scheduler = scheduler.start(self.session_factory)

    async def finish_ticks(self) -> None:
        """After `stop`: lets a scheduler tick in progress end before the engines close."""
        await scheduler.ticks_finished(within=30)

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        # The jobs in progress end first; their engine is then closed on their loop
        # (runtime.DisposeAtShutdown), and only then does the loop stop.
        self.worker.stop(timeout=SHUTDOWN_GRACE_MS)
        # The worker's own middleware stays on the process-wide broker after it stops: each app
        # started again in this process (the test suite starts hundreds) would add another.
        broker = self.worker.broker
        broker.middleware[:] = [m for m in broker.middleware if getattr(m, "worker", None) is not self.worker]
