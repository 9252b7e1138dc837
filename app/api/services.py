"""What the API needs at run time, built once per process in the lifespan and kept on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from redis import Redis

from app.credentials import redis_url
from app.db.engine import Database, create_app_engine
from app.db.migrate import head_revision
from app.secret_store import SecretStore
from app.settings import Settings
from app.tenants import TenantDirectory
from app.worker.config import celery_config

DEPENDENCY_TIMEOUT_SECONDS = 5


@dataclass
class Services:
    settings: Settings
    db: Database
    store: SecretStore
    tenants: TenantDirectory
    celery: Celery
    redis: Redis
    schema_head: str | None

    @classmethod
    def build(cls, settings: Settings) -> Services:
        store = SecretStore.from_settings(settings)
        broker = redis_url(settings, store)
        db = Database(create_app_engine(settings))
        # A publisher-only Celery app: the API never imports the worker's tasks or signals.
        celery = Celery("ai_agents_api", set_as_current=False)
        celery.conf.update(celery_config(settings, broker))
        redis = Redis.from_url(
            broker,
            socket_timeout=DEPENDENCY_TIMEOUT_SECONDS,
            socket_connect_timeout=DEPENDENCY_TIMEOUT_SECONDS,
        )
        return cls(settings, db, store, TenantDirectory(db, store), celery, redis, head_revision())

    def close(self) -> None:
        self.redis.close()
        self.db.dispose()
