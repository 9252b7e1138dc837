"""Error responses: always JSON with `detail`; dependency outages are 503 with Retry-After, not 500."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.log import get_logger
from app.secret_store import SecretUnavailableError

log = get_logger(__name__)
RETRY_AFTER_SECONDS = "5"

_UNAVAILABLE: dict[type[Exception], str] = {
    OperationalError: "database unavailable",
    # The webhook's own pool (app/db/ingest.py) raises psycopg's errors, pool timeouts included.
    psycopg.OperationalError: "database unavailable",
    PoolTimeoutError: "database unavailable",
    SecretUnavailableError: "secrets unavailable",
    RedisConnectionError: "broker unavailable",
    RedisTimeoutError: "broker unavailable",
}


def _unavailable_handler(dependency: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(_request: Request, error: Exception) -> JSONResponse:
        log.warning("dependency_unavailable", dependency=dependency, error=type(error).__name__)
        return JSONResponse(
            {"detail": f"{dependency}, retry later"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    return handler


def install_error_handlers(app: FastAPI) -> None:
    for kind, dependency in _UNAVAILABLE.items():
        app.add_exception_handler(kind, _unavailable_handler(dependency))
