"""The Celery application: `celery -A app.worker.celery_app worker` (see docs/app.md for flags).

Settings are validated on import, so a worker with a bad configuration exits at once with one message.
"""

from __future__ import annotations

import sys

from celery import Celery

# Imported for its worker lifecycle hooks (metrics server, sweeper); they fire inside a worker only.
import app.worker.signals  # noqa: F401
from app.credentials import redis_url
from app.log import configure_logging
from app.secret_store import SecretStore
from app.settings import SettingsError, get_settings
from app.worker.config import celery_config


def create_celery() -> Celery:
    try:
        settings = get_settings()
        configure_logging(settings.log_level)
        broker = redis_url(settings, SecretStore.from_settings(settings))
    except SettingsError as error:
        sys.stderr.write(f"{error}\n")
        raise SystemExit(2) from None
    celery = Celery("ai_agents", include=["app.worker.tasks", "app.worker.signals"])
    celery.conf.update(celery_config(settings, broker))
    return celery


celery_app = create_celery()
