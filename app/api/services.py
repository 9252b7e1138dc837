"""What the API needs at run time, built once per process in the lifespan and kept on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from celery import Celery
from redis import Redis
from starlette.concurrency import run_in_threadpool

from app.api.publisher import Publisher
from app.api.tenant_auth import TenantAuthenticator
from app.credentials import redis_url
from app.db.engine import Database, app_connect_kwargs, create_app_engine
from app.db.ingest import IngestDatabase
from app.db.migrate import head_revision
from app.secret_store import SecretStore
from app.settings import Settings
from app.tenants import TenantDirectory
from app.worker.config import celery_config
from app.worker.dispatch import declare_task, enqueue_many

DEPENDENCY_TIMEOUT_SECONDS = 5
PUBLISH_DRAIN_SECONDS = 10.0


@dataclass
class Services:
    settings: Settings
    db: Database
    store: SecretStore
    tenants: TenantDirectory
    celery: Celery
    redis: Redis
    schema_head: str | None
    ingest: IngestDatabase
    auth: TenantAuthenticator
    publisher: Publisher

    @classmethod
    def build(cls, settings: Settings) -> Services:
        store = SecretStore.from_settings(settings)
        broker = redis_url(settings, store)
        db = Database(create_app_engine(settings))
        # A publisher-only Celery app: the API never imports the worker's tasks or signals. It is the
        # current app, declaring the task by name, because the tracing instrumentation's publish hook
        # looks the task up there (app.worker.dispatch.declare_task).
        celery = Celery("ai_agents_api")
        celery.conf.update(celery_config(settings, broker))
        declare_task(celery)
        redis = Redis.from_url(
            broker,
            socket_timeout=DEPENDENCY_TIMEOUT_SECONDS,
            socket_connect_timeout=DEPENDENCY_TIMEOUT_SECONDS,
        )
        tenants = TenantDirectory(db, store)
        return cls(
            settings,
            db,
            store,
            tenants,
            celery,
            redis,
            head_revision(),
            IngestDatabase(settings),
            TenantAuthenticator(
                tenants,
                store,
                secret_prefix=settings.tenant_secret_prefix,
                connect_kwargs=app_connect_kwargs(settings),
            ),
            Publisher(partial(enqueue_many, celery)),
        )

    async def open(self) -> None:
        await self.ingest.open()
        self.auth.listener.start()
        self.publisher.start()

    async def close(self) -> None:
        # Within uvicorn's graceful shutdown (--timeout-graceful-shutdown 20): in-flight webhooks
        # have been answered, their jobs get published.
        await run_in_threadpool(self.publisher.close, PUBLISH_DRAIN_SECONDS)
        await self.auth.listener.stop()
        await self.ingest.close()
        self.redis.close()
        self.db.dispose()
