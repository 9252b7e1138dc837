"""Publishing enhancement tasks. Used by the API (after commit) and by the sweeper.

Publishing is bounded in time: when the broker is down the caller moves on and the job, already
committed as `queued`, is re-sent by the sweeper once it is stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from celery import Celery
from kombu.messaging import Producer

TASK_NAME = "app.enhance_ticket"
QUEUE = "enhancements"


def enqueue(celery: Celery, job_id: uuid.UUID, tenant_id: str, *, countdown: float | None = None) -> None:
    _send(celery, job_id, tenant_id, countdown=countdown, producer=None, retry=True)


def enqueue_many(celery: Celery, jobs: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Publish `jobs` in one Redis round trip (kombu's publish batch, a pipeline): on an error, none
    of them is known to be out."""
    with celery.producer_or_acquire() as producer, producer.batch(max_size=max(1, len(jobs))):
        for job_id, tenant_id in jobs:
            # Buffered until the batch flushes on exit: a per-message retry would have nothing to retry.
            _send(celery, job_id, tenant_id, countdown=None, producer=producer, retry=False)


def _send(
    celery: Celery,
    job_id: uuid.UUID,
    tenant_id: str,
    *,
    countdown: float | None,
    producer: Producer | None,
    retry: bool,
) -> None:
    celery.send_task(
        TASK_NAME,
        args=[str(job_id), tenant_id],
        queue=QUEUE,
        countdown=countdown,
        producer=producer,
        retry=retry,
        retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
    )
