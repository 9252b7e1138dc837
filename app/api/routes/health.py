"""Probes. Liveness never touches a dependency (a database outage must not restart every pod);
readiness checks each dependency with its own 5 s timeout and says which one failed.

The schema is ready for this code at its own head *or* at a later revision whose every step since
that head is declared compatible with the previous release (app/db/compat.py). Demanding the exact
head would turn every old pod NotReady the moment a release's migrations ran, before the new pods
are Ready, and a rolled-back release would never become Ready at all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import ServicesDep
from app.api.schemas import DependencyCheck, Readiness
from app.api.services import DEPENDENCY_TIMEOUT_SECONDS, Services
from app.db.compat import assess

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def _check_database(services: Services) -> str | None:
    with services.db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        verdict = assess(connection, services.schema_head)
    return None if verdict.code_runs else verdict.detail


def _check_redis(services: Services) -> str | None:
    services.redis.ping()
    return None


async def _run(check: Callable[[Services], str | None], services: Services) -> DependencyCheck:
    try:
        problem = await asyncio.wait_for(asyncio.to_thread(check, services), DEPENDENCY_TIMEOUT_SECONDS)
    except TimeoutError:
        return DependencyCheck(status="error", detail=f"timed out after {DEPENDENCY_TIMEOUT_SECONDS}s")
    except Exception as error:
        return DependencyCheck(status="error", detail=f"unreachable: {type(error).__name__}")
    return DependencyCheck(status="error", detail=problem) if problem else DependencyCheck(status="ok")


@router.get("/api/v1/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(services: ServicesDep) -> JSONResponse:
    database, redis = await asyncio.gather(_run(_check_database, services), _run(_check_redis, services))
    checks = {"database": database, "redis": redis}
    ok = all(check.status == "ok" for check in checks.values())
    body = Readiness(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
