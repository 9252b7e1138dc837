"""Celery tasks. Thin: the work and its idempotency live in app.worker.enhance."""

from __future__ import annotations

import uuid

from celery import Task

from app.worker.celery_app import celery_app
from app.worker.dispatch import TASK_NAME
from app.worker.enhance import RetryLater, process_job
from app.worker.runtime import runtime


@celery_app.task(bind=True, name=TASK_NAME, max_retries=None)
def enhance_ticket(self: Task, job_id: str, tenant_id: str) -> str:
    # Attempts are counted and bounded in the database (TASK_MAX_RETRIES), not in the message, so a
    # job re-sent by the sweeper keeps its history.
    outcome = process_job(runtime(), uuid.UUID(job_id), tenant_id)
    if isinstance(outcome, RetryLater):
        raise self.retry(countdown=outcome.countdown, max_retries=None)
    return outcome.status
