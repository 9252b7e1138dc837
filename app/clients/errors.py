"""Failure kinds shared by the outbound clients: the worker retries transient ones, fails on permanent."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


class UpstreamError(Exception):
    """A call to ServiceDesk Plus or the LLM failed."""

    kind = "error"


class TransientError(UpstreamError):
    """Worth retrying later: 429, 5xx, timeouts, connection failures."""

    kind = "transient"

    def __init__(
        self, message: str, *, retry_after: float | None = None, safe_to_repeat: bool = True
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # False when the request may have been processed (e.g. a POST that timed out after sending):
        # repeating it blindly could duplicate its effect.
        self.safe_to_repeat = safe_to_repeat


class PermanentError(UpstreamError):
    """Retrying will not help: bad credentials, unknown ticket, invalid output."""

    kind = "permanent"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
