"""Publishing enhancement tasks. Used by the API (after commit) and by the sweeper.

Publishing is bounded in time: when the broker is down the caller moves on and the job, already
committed as `queued`, is re-sent by the sweeper once it is stale.
"""

from __future__ import annotations

import uuid

from celery import Celery

TASK_NAME = "app.enhance_ticket"
QUEUE = "enhancements"


def enqueue(celery: Celery, job_id: uuid.UUID, tenant_id: str, *, countdown: float | None = None) -> None:
    celery.send_task(
        TASK_NAME,
        args=[str(job_id), tenant_id],
        queue=QUEUE,
        countdown=countdown,
        retry=True,
        retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
    )
