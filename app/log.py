"""Structured JSON logs for the API, the worker and the CLI.

Every line carries the request id and tenant id bound in `structlog.contextvars`. A redaction step
runs last before rendering, so a secret or a ticket body handed to a log call by mistake never leaves
the process at info level.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

_SECRET_KEYS = (
    "password",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "credential",
    "signature",
)
_BODY_KEYS = frozenset({"body", "description", "ticket", "payload", "content", "prompt"})
_INFO = logging.INFO


def redact(_logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    level = logging.getLevelNamesMapping().get(method.upper(), _INFO)
    for key in list(event):
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_KEYS):
            event[key] = "[redacted]"
        elif lowered in _BODY_KEYS and level >= _INFO:
            value = event[key]
            event[key] = f"[{len(value) if isinstance(value, str | bytes) else '?'} chars omitted]"
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]


def configure_logging(level: str = "INFO") -> None:
    """Render structlog and stdlib records (uvicorn, celery, alembic) as one JSON object per line."""
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Access logs are emitted by our own middleware with the request id; uvicorn's would duplicate them.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error", "celery", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
