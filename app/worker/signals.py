"""Worker process lifecycle: Prometheus endpoint on start, sweeper when ready, clean shutdown."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init, worker_ready, worker_shutdown
from prometheus_client import start_http_server

from app.log import get_logger
from app.settings import get_settings
from app.worker.runtime import runtime
from app.worker.sweeper import Sweeper

log = get_logger(__name__)
_sweeper: list[Sweeper] = []


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
