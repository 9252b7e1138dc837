"""Celery configuration derived from the validated settings."""

from __future__ import annotations

from typing import Any

from app.settings import Settings
from app.worker.dispatch import QUEUE


def celery_config(settings: Settings, broker_url: str) -> dict[str, Any]:
    return {
        "broker_url": broker_url,
        # Job state lives in PostgreSQL; a result backend would be a second source of truth.
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": QUEUE,
        # At-least-once delivery: ack after the task ran, re-deliver if the worker dies mid-task,
        # and let a worker reserve only the message it is about to run.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Enforced by the prefork pool; under the threads pool the clients' own timeouts bound a task
        # (see docs/app.md). Both stay below the visibility timeout (checked in settings).
        "task_soft_time_limit": settings.task_soft_time_limit_seconds,
        "task_time_limit": settings.task_time_limit_seconds,
        "broker_transport_options": {
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            "socket_connect_timeout": settings.enqueue_timeout_seconds,
            "socket_timeout": 10,
            "health_check_interval": 30,
        },
        "broker_connection_timeout": settings.enqueue_timeout_seconds,
        "broker_connection_retry_on_startup": True,
        "broker_pool_limit": 10,
        "worker_pool": "threads",
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }
