"""Publishes accepted jobs to the broker from one background thread, so no webhook waits on Redis.

A job is committed as `queued` before it gets here, which is what makes a late or failed publish
harmless: the sweeper (in the worker) re-sends any job still queued after SWEEPER_STALE_AFTER_SECONDS.
So the webhook answers 202 once the job is stored; the publish follows within milliseconds. What this
buys (docs/performance.md): no thread hop per request (kombu publishes with a blocking socket, so it
cannot run on the event loop), and a broker outage no longer holds every webhook for the enqueue
timeout, nor fills the thread pool with them.

Nothing is dropped silently: a failed publish, a full backlog, or jobs still waiting at shutdown are
counted in `ai_agents_enqueue_failures_total` and logged, and the sweeper re-sends them.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from opentelemetry import context as otel_context

from app.log import get_logger
from app.metrics import ENQUEUE_FAILURES
from app.worker.dispatch import Job

log = get_logger(__name__)

# Far above what one process ingests during a broker outage's first minutes; beyond it the sweeper
# takes over, and memory stays bounded.
MAX_BACKLOG = 10_000

# One Redis round trip for whatever waited while the previous batch went out: under load the
# per-message cost of a publish drops (docs/performance.md); when idle a batch is one job.
MAX_BATCH = 100

PublishMany = Callable[[Sequence[Job]], None]


class Publisher:
    def __init__(self, publish_many: PublishMany, *, max_backlog: int = MAX_BACKLOG) -> None:
        self._publish_many = publish_many
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_backlog)  # None: stop
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._started = False
        self._publishing = 0  # read at shutdown: jobs taken from the queue but not yet out

    def start(self) -> None:
        self._thread.start()
        self._started = True

    def submit(self, job_id: uuid.UUID, tenant_id: str) -> None:
        """Never blocks: called from the event loop. The caller's trace goes with the job."""
        try:
            self._queue.put_nowait(Job(job_id, tenant_id, otel_context.get_current()))
        except queue.Full:
            ENQUEUE_FAILURES.inc()
            log.warning("enqueue_failed", job_id=str(job_id), error="backlog full")

    def backlog(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float) -> None:
        """Publish what is waiting, for at most `timeout` seconds; report what is left to the sweeper."""
        if not self._started:
            return
        deadline = time.monotonic() + timeout
        while True:  # the stop marker needs a free slot when the backlog is full
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            return
        left = self._drain() + self._publishing
        if left:
            ENQUEUE_FAILURES.inc(left)
            log.warning("enqueue_abandoned_at_shutdown", jobs=left)

    def _drain(self) -> int:
        jobs = 0
        while True:
            try:
                jobs += self._queue.get_nowait() is not None
            except queue.Empty:
                return jobs

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                self._publish(batch)
            if stop:
                return

    def _next_batch(self) -> tuple[list[Job], bool]:
        """Wait for one job, then take whatever else is already waiting (up to MAX_BATCH)."""
        batch: list[Job] = []
        item = self._queue.get()
        while item is not None:
            batch.append(item)
            if len(batch) == MAX_BATCH:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _publish(self, batch: list[Job]) -> None:
        self._publishing = len(batch)
        try:
            self._publish_many(batch)
        except Exception as error:
            # None of the batch is known to be out; the sweeper re-sends them (a duplicate message
            # is harmless: the worker's claim runs a job once).
            ENQUEUE_FAILURES.inc(len(batch))
            for job in batch:
                log.warning("enqueue_failed", job_id=str(job.id), error=type(error).__name__)
        finally:
            self._publishing = 0
