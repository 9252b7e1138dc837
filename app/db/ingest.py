"""The webhook's database path: one statement per delivery on psycopg's own async connection pool.

Ingest is the API's hot path, so it skips the ORM, the sessions and the thread hop of the rest of the
service (docs/performance.md, "Webhook ingest"): a delivery is one call of `app_accept_delivery`
(migration 0003) in autocommit mode, on the event loop. Everything else (job status, readiness, tenant
look-ups) keeps the synchronous SQLAlchemy engine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from psycopg_pool import AsyncConnectionPool

from app.db.engine import CONNECTION_RECYCLE_SECONDS, POOL_TIMEOUT_SECONDS, app_connect_kwargs
from app.settings import Settings

_ACCEPT = "SELECT job_id, created FROM app_accept_delivery(%s, %s, %s, %s)"
# psycopg_pool retries a failed connect with a growing back-off (1, 2, 4, 8 s ...) for this long before
# giving up; the next webhook then starts a fresh attempt. Its default (5 min) kept the pool waiting
# out its back-off for up to ~15 s after a 10 s database outage, answering 503 while the database was
# back (tests/reliability/test_dependency_outages.py).
RECONNECT_TIMEOUT_SECONDS = 2.0
# The database client span of the ingest statement, named and attributed as the OpenTelemetry database
# conventions say (the SQLAlchemy instrumentation covers the engine, not this pool). The statement text
# holds placeholders only.
_SPAN_NAME = "SELECT app_accept_delivery"
_SPAN_ATTRIBUTES = {
    "db.system.name": "postgresql",
    "db.operation.name": "SELECT",
    "db.stored_procedure.name": "app_accept_delivery",
    "db.query.text": _ACCEPT,
}
_tracer = trace.get_tracer(__name__)


class DeadConnectionError(psycopg.OperationalError):
    """A pooled connection the server had closed; an OperationalError, so a 503 if it happens twice."""


@dataclass(frozen=True, slots=True)
class Accepted:
    job_id: uuid.UUID
    created: bool


class IngestDatabase:
    """Owns the pool; `open()` does not wait for the database, so the API starts while it is down."""

    def __init__(self, settings: Settings) -> None:
        self._pool = AsyncConnectionPool(
            kwargs=app_connect_kwargs(settings),
            min_size=1,
            max_size=2 * settings.database_pool_size,
            timeout=POOL_TIMEOUT_SECONDS,
            max_lifetime=CONNECTION_RECYCLE_SECONDS,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            configure=_autocommit,
            open=False,
            name="ingest",
        )

    async def open(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def accept_delivery(
        self, *, tenant_id: str, ticket_id: str, dedupe_key: str, body_sha256: str
    ) -> Accepted | None:
        """Store the job unless this delivery was already accepted; either way return its id.

        None: the tenant is unknown or disabled (checked by the database, not a cache). A connection
        found dead is retried once on a fresh one instead of pinging every connection before use: the
        call is idempotent (the unique indexes make a repeat a duplicate), so a retry cannot add a job.
        """
        params = (tenant_id, ticket_id, dedupe_key, body_sha256)
        try:
            row = await self._accept(params)
        except DeadConnectionError:
            # Its idle siblings are likely dead too (the same failover or restart): check them first.
            await self._pool.check()
            row = await self._accept(params)
        return None if row is None else Accepted(row[0], bool(row[1]))

    async def _accept(self, params: tuple[str, str, str, str]) -> tuple[Any, ...] | None:
        with _tracer.start_as_current_span(_SPAN_NAME, kind=SpanKind.CLIENT, attributes=_SPAN_ATTRIBUTES):
            return await self._accept_on_pool(params)

    async def _accept_on_pool(self, params: tuple[str, str, str, str]) -> tuple[Any, ...] | None:
        async with self._pool.connection() as connection:
            try:
                cursor = await connection.execute(_ACCEPT, params, prepare=True)
                return await cursor.fetchone()
            except psycopg.OperationalError as error:
                # `broken`: the server closed it while it sat in the pool (failover, restart, idle
                # timeout); the pool discards it on return. Anything else (a timeout, a database that
                # is down) is not worth a retry here: the caller answers 503.
                if connection.broken:
                    raise DeadConnectionError(str(error)) from error
                raise


async def _autocommit(connection: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    # One statement is one transaction: no BEGIN/COMMIT round trips around it.
    await connection.set_autocommit(True)
