"""Re-sends jobs left `queued` (lost publish, broker outage) or `running` past their lease (dead worker).

Every worker replica runs this loop; no leader is needed because the claim inside
`app_claim_stale_jobs` uses `FOR UPDATE SKIP LOCKED` and bumps `enqueued_at`, so one stale job is
picked by exactly one replica per staleness window. A duplicate send is harmless anyway: the task
claims the job before doing anything.
"""

from __future__ import annotations

import random
import threading

from celery import Celery

from app.db import jobs
from app.log import get_logger
from app.metrics import SWEEPER_REQUEUED
from app.worker.dispatch import enqueue
from app.worker.runtime import Runtime

log = get_logger(__name__)
BATCH = 100


def sweep_once(rt: Runtime, celery: Celery) -> int:
    with rt.db.unscoped() as session:
        stale = jobs.claim_stale(
            session, stale_after_seconds=rt.settings.sweeper_stale_after_seconds, limit=BATCH
        )
    sent = 0
    for job_id, tenant_id in stale:
        try:
            enqueue(celery, job_id, tenant_id)
        except Exception as error:
            log.warning("sweeper_enqueue_failed", job_id=str(job_id), error=type(error).__name__)
            continue
        sent += 1
    if sent:
        SWEEPER_REQUEUED.inc(sent)
        log.info("sweeper_requeued", count=sent)
    return sent


class Sweeper:
    def __init__(self, rt: Runtime, celery: Celery) -> None:
        self._rt = rt
        self._celery = celery
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        interval = self._rt.settings.sweeper_interval_seconds
        # Replicas started together would otherwise sweep in lock step.
        while not self._stop.wait(interval * random.uniform(0.8, 1.2)):  # noqa: S311
            try:
                sweep_once(self._rt, self._celery)
            except Exception as error:
                log.warning("sweeper_failed", error=type(error).__name__)
