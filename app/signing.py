"""HMAC-SHA256 signatures: `X-ServiceDesk-Signature: sha256=<hex>` over the raw request body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

PREFIX = "sha256="


def sign(secret: str, message: bytes) -> str:
    return PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(header: str | None, message: bytes, secrets: Iterable[str]) -> bool:
    """True when `header` is a valid signature of `message` under any of `secrets` (rotation).

    Every secret is compared, in constant time, so timing reveals neither the match nor its position.
    """
    if not header or not header.startswith(PREFIX):
        return False
    presented = header[len(PREFIX) :].strip().lower().encode()
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode()
        matched |= hmac.compare_digest(presented, expected)
    return matched


def job_request_message(timestamp: str, method: str, path: str) -> bytes:
    """What a client signs to read a job's status: no body, so the request line and a timestamp."""
    return f"{timestamp}\n{method.upper()}\n{path}".encode()
