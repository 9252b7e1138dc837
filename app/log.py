"""Structured JSON logs for the API, the worker and the CLI.

Every line carries the request id and tenant id bound in `structlog.contextvars`, and, inside a traced
operation, the trace and span ids (`trace_id`, `span_id`: the same hex a tracing backend searches by,
app/tracing.py), so a line leads to its trace and a trace to its lines. Secrets are kept out
three ways, whatever LOG_LEVEL says:

- third-party loggers are capped (`LIBRARY_LEVELS`): below their cap they print request and response
  bodies, signatures or SQL parameters;
- a redaction step before rendering replaces fields named like secrets and omits ticket bodies at
  info level;
- every secret value the process has loaded (`register_secrets`: Secrets Manager reads, credentials
  from the environment) is masked in the rendered line, wherever it appears: in any field, in a
  foreign library's message, in a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from opentelemetry import trace
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
MASK = "[redacted]"
# Shorter values are not secrets worth the cost, and masking them would hit ordinary words.
MIN_SECRET_LENGTH = 8

# The least severe level each library may log at, whatever the app's level: what it prints below.
LIBRARY_LEVELS = {
    # DEBUG: whole request and response bodies (Secrets Manager's SecretString), canonical requests
    # and signatures. INFO only names where credentials were found.
    "botocore": logging.INFO,
    "boto3": logging.INFO,
    "s3transfer": logging.INFO,
    # DEBUG: every request line, path and query included (a presigned URL carries its signature).
    "urllib3": logging.INFO,
    # INFO: every request URL with its query string (ServiceDesk Plus list queries carry ticket data).
    "httpx": logging.WARNING,
    "httpx2": logging.WARNING,  # the httpx flavour openai uses
    # DEBUG: connection and request traces with response headers.
    "httpcore": logging.INFO,
    "httpcore2": logging.INFO,
    # DEBUG: request building and retry decisions. INFO only announces a retry.
    "openai": logging.INFO,
    # DEBUG: broker connection, consumer and task-pool internals, message ids and delivery details.
    "kombu": logging.INFO,
    "celery": logging.INFO,
    # DEBUG: connection details on every failed command.
    "redis": logging.INFO,
    # DEBUG: every connection attempt; psycopg.pool logs each checkout and return at INFO (three lines
    # per webhook), and psycopg's libpq tracing logs connection strings, password included, at INFO.
    "psycopg": logging.WARNING,
    # INFO: every SQL statement with its bound parameters (ticket text, tenant ids); DEBUG: result rows.
    "sqlalchemy": logging.WARNING,
    # DEBUG: selector choice and, in asyncio debug mode, slow-callback reports with task reprs.
    "asyncio": logging.INFO,
}


@dataclass(frozen=True, slots=True)
class _Masker:
    """One view of the registered secrets, replaced whole and never changed: `mask` needs no lock."""

    checks: tuple[str, ...]  # enough to tell whether a line holds any secret (see `_add_checks`)
    forms: tuple[str, ...]  # every secret, longest first

    def mask(self, text: str) -> str:
        # A plain `in` per check: several times faster than a regex alternation, and nearly every
        # line holds no secret.
        for check in self.checks:
            if check in text:
                return self._replace_all(text)
        return text

    def _replace_all(self, text: str) -> str:
        # Longest first: a secret that contains another (a raw JSON secret and the values in it) is
        # masked whole.
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


def _add_checks(checks: tuple[str, ...], new: Iterable[str]) -> tuple[str, ...]:
    """The secrets that contain no other, updated for `new` ones. A line holding a secret holds every
    secret that one contains, so looking for these alone is enough: a JSON secret costs nothing more
    than the values in it. Linear in the number of secrets, as registrations come one by one."""
    kept = [check for check in checks if not any(form in check for form in new)]
    for form in sorted(new, key=len):
        if not any(check in form for check in kept):
            kept.append(form)
    return tuple(kept)


class SecretValues:
    """The secret values masked in every log line, wherever they appear.

    `mask` runs on every line without taking the lock: it reads one immutable `_Masker`, which
    registrations replace under the lock, only when the set of values actually changes.
    """

    def __init__(self, min_length: int = MIN_SECRET_LENGTH) -> None:
        self._min_length = min_length
        self._lock = threading.Lock()
        self._kept: frozenset[str] = frozenset()
        self._kept_checks: tuple[str, ...] = ()
        self._replaceable: dict[str, frozenset[str]] = {}
        self._masker = _Masker((), ())

    def add(self, *values: str | None) -> None:
        """Mask `values` for the life of the process."""
        forms = self._forms(values)
        if forms <= self._kept:  # already known: the usual case, decided without the lock
            return
        with self._lock:
            new = forms - self._kept
            self._kept |= new
            self._kept_checks = _add_checks(self._kept_checks, new)
            self._publish()

    def replace(self, kind: str, *values: str | None) -> None:
        """Mask `values` instead of those registered last under `kind`: for credentials issued per
        use (RDS IAM tokens, one per connection), which would otherwise grow the set without end."""
        forms = self._forms(values)
        with self._lock:
            if self._replaceable.get(kind) == forms:
                return
            self._replaceable[kind] = forms
            self._publish()

    def mask(self, text: str) -> str:
        return self._masker.mask(text)

    def _forms(self, values: Iterable[str | None]) -> frozenset[str]:
        """How each value appears in a JSON line: JSON-escaped (so a quote, a backslash or a non-ASCII
        character still matches), as given and stripped (a secret read with a trailing newline is
        used without it)."""
        raw = {text for value in values if value for text in (value, value.strip())}
        return frozenset(json.dumps(text)[1:-1] for text in raw if len(text) >= self._min_length)

    def _publish(self) -> None:
        replaceable = frozenset[str]().union(*self._replaceable.values())
        forms = sorted(self._kept | replaceable, key=len, reverse=True)
        self._masker = _Masker((*self._kept_checks, *replaceable), tuple(forms))


SECRETS = SecretValues()


def register_secrets(*values: str | None) -> None:
    """Mask these values wherever they appear in a log line from now on. Call it as soon as a secret
    is read; values shorter than `MIN_SECRET_LENGTH` and None are ignored."""
    SECRETS.add(*values)


def replace_secrets(kind: str, *values: str | None) -> None:
    """Like `register_secrets`, but replacing the values registered before under `kind`."""
    SECRETS.replace(kind, *values)


def redact(_logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    level = logging.getLevelNamesMapping().get(method.upper(), _INFO)
    for key in list(event):
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_KEYS):
            event[key] = MASK
        elif lowered in _BODY_KEYS and level >= _INFO:
            value = event[key]
            event[key] = f"[{len(value) if isinstance(value, str | bytes) else '?'} chars omitted]"
    return event


def mask_secret_values(_logger: WrappedLogger, _method: str, event: EventDict | str) -> EventDict | str:
    """Mask registered secrets in the rendered line. It runs after the renderer, on the exact text that
    leaves the process: every field and nested value, foreign records' messages and tracebacks alike."""
    return SECRETS.mask(event) if isinstance(event, str) else event


def add_trace_ids(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """The current span's trace and span ids. Present whether or not the trace is sampled or exported:
    the ids exist either way, and a sampled-out trace's lines still share one id."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event.setdefault("span_id", trace.format_span_id(context.span_id))
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
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
            mask_secret_values,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, cap in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(max(cap, root.level))
    # Access logs are emitted by our own middleware with the request id; uvicorn's would duplicate them.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error", "celery", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
