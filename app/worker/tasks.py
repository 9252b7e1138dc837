"""Celery tasks. Thin: the work and its idempotency live in app.worker.enhance."""

from __future__ import annotations

import uuid

from celery import Task

from app.log import get_logger
from app.metrics import ENHANCEMENT_OUTCOMES
from app.worker.celery_app import celery_app
from app.worker.dispatch import TASK_NAME
from app.worker.enhance import RetryLater, postpone, process_job
from app.worker.fairness import defer_seconds
from app.worker.runtime import runtime

log = get_logger(__name__)


@celery_app.task(bind=True, name=TASK_NAME, max_retries=None)
def enhance_ticket(self: Task, job_id: str, tenant_id: str, deferrals: int = 0) -> str:
    # Attempts are counted and bounded in the database (TASK_MAX_RETRIES), not in the message, so a
    # job re-sent by the sweeper keeps its history.
    rt = runtime()
    if not rt.slots.try_acquire(tenant_id):
        # The tenant holds its share of this worker's threads: back on the queue, unclaimed (no attempt
        # is used), so that this thread serves other tenants meanwhile (app.worker.fairness).
        countdown = defer_seconds(deferrals)
        postpone(rt, uuid.UUID(job_id), tenant_id, countdown)
        ENHANCEMENT_OUTCOMES.labels("deferred").inc()
        log.debug("job_deferred", job_id=job_id, tenant_id=tenant_id, countdown=round(countdown, 2))
        raise self.retry(countdown=countdown, max_retries=None, kwargs={"deferrals": deferrals + 1})
    try:
        outcome = process_job(rt, uuid.UUID(job_id), tenant_id)
    finally:
        rt.slots.release(tenant_id)
    if isinstance(outcome, RetryLater):
        raise self.retry(countdown=outcome.countdown, max_retries=None, kwargs={})
    return outcome.status
