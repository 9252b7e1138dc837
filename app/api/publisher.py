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
from collections.abc import Callable

from app.log import get_logger
from app.metrics import ENQUEUE_FAILURES

log = get_logger(__name__)

# Far above what one process ingests during a broker outage's first minutes; beyond it the sweeper
# takes over, and memory stays bounded.
MAX_BACKLOG = 10_000

Publish = Callable[[uuid.UUID, str], None]


class Publisher:
    def __init__(self, publish: Publish, *, max_backlog: int = MAX_BACKLOG) -> None:
        self._publish = publish
        self._queue: queue.Queue[tuple[uuid.UUID, str] | None] = queue.Queue(
            maxsize=max_backlog
        )  # None: stop
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._started = False
        self._publishing = False  # read at shutdown: a job taken from the queue but not yet out

    def start(self) -> None:
        self._thread.start()
        self._started = True

    def submit(self, job_id: uuid.UUID, tenant_id: str) -> None:
        """Never blocks: called from the event loop."""
        try:
            self._queue.put_nowait((job_id, tenant_id))
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
        left = self._drain() + (1 if self._publishing else 0)
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
            item = self._queue.get()
            if item is None:
                return
            job_id, tenant_id = item
            self._publishing = True
            try:
                self._publish(job_id, tenant_id)
            except Exception as error:
                ENQUEUE_FAILURES.inc()
                log.warning("enqueue_failed", job_id=str(job_id), error=type(error).__name__)
            finally:
                self._publishing = False
