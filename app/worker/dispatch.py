"""Publishing enhancement tasks. Used by the API (after commit) and by the sweeper.

Publishing is bounded in time: when the broker is down the caller moves on and the job, already
committed as `queued`, is re-sent by the sweeper once it is stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import NamedTuple

from celery import Celery
from kombu.messaging import Producer
from opentelemetry import context as otel_context
from opentelemetry.context import Context

TASK_NAME = "app.enhance_ticket"
QUEUE = "enhancements"


class Job(NamedTuple):
    id: uuid.UUID
    tenant_id: str
    # The trace the job was accepted in (the webhook's request), when it is published from another
    # thread: the publish span joins that trace, and the message's headers carry it to the task.
    trace: Context | None = None


def declare_task(celery: Celery) -> None:
    """The task, by name only, on a publish-only app (the API's). The tracing instrumentation finds the
    published task by name in the current app: for a task it cannot find, it opens the publish span
    and never ends it (no span exported, and the publisher thread's later publishes nested under it)."""

    @celery.task(name=TASK_NAME, shared=False)
    def _runs_in_the_worker(*_args: object, **_kwargs: object) -> None:
        raise NotImplementedError("the worker runs this task (app.worker.tasks)")


def enqueue(celery: Celery, job_id: uuid.UUID, tenant_id: str, *, countdown: float | None = None) -> None:
    _send(celery, job_id, tenant_id, countdown=countdown, producer=None, retry=True)


def enqueue_many(celery: Celery, jobs: Sequence[Job]) -> None:
    """Publish `jobs` in one Redis round trip (kombu's publish batch, a pipeline): on an error, none
    of them is known to be out."""
    with celery.producer_or_acquire() as producer, producer.batch(max_size=max(1, len(jobs))):
        for job in jobs:
            token = otel_context.attach(job.trace) if job.trace is not None else None
            try:
                # Buffered until the batch flushes on exit: a per-message retry would have nothing to
                # retry.
                _send(celery, job.id, job.tenant_id, countdown=None, producer=producer, retry=False)
            finally:
                if token is not None:
                    otel_context.detach(token)


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
