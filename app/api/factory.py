"""Builds the FastAPI application from validated settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import REGISTRY

from app import tracing
from app.api.errors import install_error_handlers
from app.api.middleware import RequestContextMiddleware, SecurityHeadersMiddleware
from app.api.routes import health, jobs, metrics, webhook
from app.api.services import Services
from app.db import jobs as job_store
from app.metrics import BacklogCollector
from app.settings import Settings
from app.worker.dispatch import QUEUE


def _backlog(services: Services) -> BacklogCollector:
    def job_counts() -> dict[str, int]:
        with tracing.untraced(), services.db.unscoped() as session:
            return job_store.status_counts(session)

    def queue_depth() -> int:
        return int(services.redis.llen(QUEUE))  # type: ignore[arg-type]

    return BacklogCollector(job_counts, queue_depth)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No dependency is called here: the process starts (and /health answers) with the database down.
        services = Services.build(settings)
        await services.open()
        app.state.services = services
        collector = _backlog(services)
        REGISTRY.register(collector)
        try:
            yield
        finally:
            REGISTRY.unregister(collector)
            await services.close()  # publishes what is waiting: its spans end before the flush
            tracing.shutdown()

    app = FastAPI(
        title="AI Agents ticket enhancement",
        version="1.0.0",
        summary="Multi-tenant ServiceDesk Plus ticket enhancement",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (health.router, webhook.router, jobs.router, metrics.router):
        app.include_router(router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-Tenant-ID", "X-ServiceDesk-Signature", "X-Signature-Timestamp"],
        )
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)  # last added = outermost: headers on every response
    return app
