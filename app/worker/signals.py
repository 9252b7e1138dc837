"""Worker process lifecycle: tracing and the Prometheus endpoint on start, sweeper when ready, clean
shutdown (buffered spans exported last)."""

from __future__ import annotations

from typing import Any

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from prometheus_client import start_http_server

from app import tracing
from app.log import get_logger
from app.settings import get_settings
from app.worker.runtime import runtime
from app.worker.sweeper import Sweeper

log = get_logger(__name__)
_sweeper: list[Sweeper] = []


@worker_init.connect
@worker_process_init.connect
def _start_tracing(**_: Any) -> None:
    # worker_init: the main process, which runs the tasks under the threads pool (the deployed one)
    # and the sweeper. A prefork child inherits it (worker_process_init is then a no-op); the child
    # exports what it buffered when it exits (worker_process_shutdown).
    tracing.setup(tracing.WORKER_SERVICE)


@worker_process_shutdown.connect
def _stop_tracing(**_: Any) -> None:
    tracing.shutdown()


@worker_init.connect
def _start_metrics(**_: Any) -> None:
    port = get_settings().worker_metrics_port
    if port:
        start_http_server(port, addr="0.0.0.0")  # noqa: S104 - scraped from inside the cluster
        log.info("worker_metrics_listening", port=port)


@worker_ready.connect
def _start_sweeper(sender: Any, **_: Any) -> None:
    # The sender is the worker's consumer; its app is the Celery app it serves (importing
    # app.worker.celery_app here would be a cycle: that module imports this one).
    sweeper = Sweeper(runtime(), sender.app)
    sweeper.start()
    _sweeper.append(sweeper)
    log.info("worker_ready", sweeper_interval=get_settings().sweeper_interval_seconds)


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    for sweeper in _sweeper:
        sweeper.stop()
    runtime().close()
    tracing.shutdown()
