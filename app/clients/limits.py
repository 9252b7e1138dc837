"""Wall-clock deadlines and response-size caps for the outbound HTTP clients (ServiceDesk Plus, LLM).

Per-read timeouts do not bound a call: an upstream that sends one byte every few seconds never lets a
read wait long enough to time out, and held a worker thread for as long as it liked. So a call runs
inside a deadline scope (`deadline(seconds, what)`), scopes nest (a job's budget, then each call's),
and the tightest one applies. It is enforced where the bytes move: every connect, read and write on
the socket gets a timeout no longer than the time left and fails with `DeadlineExceeded` once it is
spent (`DeadlineBackend`), the pool wait too (`LimitedTransport`), so a trickle is cut off in the
status line and headers as surely as in the body.

Response bodies are counted as they are decoded, chunk by chunk, and abandoned past the transport's
cap with `ResponseTooLarge`, so a 50 MB answer costs at most the cap in memory. Neither error is an
httpx exception: they pass through httpx and the `openai` SDK untouched (the SDK neither wraps nor
retries them), and each client maps them to its own transient or permanent failure.
"""

from __future__ import annotations

import functools
import math
import random
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import httpcore
import httpx

from app.clients.errors import TransientError

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The time allowed for the call (or for the whole job) ran out."""


class ResponseTooLarge(Exception):
    """The response body grew past the transport's cap."""


@dataclass(frozen=True, slots=True)
class _Scope:
    expires: float  # time.monotonic()
    what: str  # e.g. "job deadline (240 s)"


# Per thread (each Celery thread runs one task at a time) and restored on exit, so a scope never leaks
# into the next task the thread runs.
_scope: ContextVar[_Scope | None] = ContextVar("outbound_deadline", default=None)


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Run the block with at most `seconds` more for outbound HTTP, or less if an enclosing scope ends
    sooner. `what` names the limit in the error, e.g. `deadline(240, "job deadline")`."""
    mine = _Scope(time.monotonic() + seconds, f"{what} ({seconds:g} s)")
    outer = _scope.get()
    token = _scope.set(mine if outer is None or mine.expires < outer.expires else outer)
    try:
        yield
    finally:
        _scope.reset(token)


def remaining() -> float:
    """Seconds left in the current scope (infinite outside any)."""
    scope = _scope.get()
    return math.inf if scope is None else scope.expires - time.monotonic()


def check() -> None:
    scope = _scope.get()
    if scope is not None and time.monotonic() >= scope.expires:
        raise DeadlineExceeded(f"{scope.what} exceeded")


def clip(timeout: float | None) -> float | None:
    """`timeout` shortened to the time left; DeadlineExceeded when none is left."""
    check()
    left = remaining()
    if math.isinf(left):
        return timeout
    return left if timeout is None else min(timeout, left)


def backoff_within_deadline(
    *, initial: float, max_wait: float, retry_after_max: float
) -> Callable[[Exception], bool | float]:
    """A stamina `on` hook for one call: retry a transient failure that is safe to repeat after what
    `Retry-After` asks (up to `retry_after_max`) or an exponential backoff with jitter (stamina's own
    schedule: `initial` doubling, plus up to 1 s, at most `max_wait`), unless that wait would end past
    the deadline: then the call gives up now, and the job's retry (later, with its own backoff and
    `Retry-After`) takes over. The wait is computed here, not by stamina, to be checked."""
    retries = 0

    def hook(error: Exception) -> bool | float:
        nonlocal retries
        if not isinstance(error, TransientError) or not error.safe_to_repeat:
            return False
        retries += 1
        if error.retry_after is not None:
            wait = min(error.retry_after, retry_after_max)
        else:
            jitter = random.uniform(0, 1.0)  # noqa: S311 - jitter, not cryptography
            wait = min(max_wait, initial * 2 ** (retries - 1) + jitter)
        return False if wait >= remaining() else wait

    return hook


def _bounded(operation: Callable[[float | None], T], timeout: float | None) -> T:
    """Run a socket operation with its timeout clipped to the deadline; report the deadline, not a
    plain timeout, when that is what cut it short (the clients do not retry a spent deadline)."""
    clipped = clip(timeout)
    try:
        return operation(clipped)
    except httpcore.TimeoutException:
        check()
        raise


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write is bounded by the current scope's deadline. Looked up
    per operation, not at connect time: a kept-alive connection serves later calls with their own."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _bounded(lambda clipped: self._inner.read(max_bytes, clipped), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _bounded(lambda clipped: self._inner.write(buffer, clipped), timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return DeadlineStream(
            _bounded(lambda clipped: self._inner.start_tls(ssl_context, server_hostname, clipped), timeout)
        )

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend (or `inner`, e.g. the egress guard) with deadline-bounded streams."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            lambda clipped: self._inner.connect_tcp(host, port, clipped, local_address, socket_options),
            timeout,
        )
        return DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            lambda clipped: self._inner.connect_unix_socket(path, clipped, socket_options), timeout
        )
        return DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class CappedResponse(httpx.Response):
    """A response whose decoded body may not exceed `max_bytes`: httpx reads every body through
    `iter_bytes` (`read()`, `json()`, the SDK's parsing), so this is where it is counted."""

    max_bytes: int = 0

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        received = 0
        for chunk in super().iter_bytes(chunk_size):
            received += len(chunk)
            if received > self.max_bytes:
                raise ResponseTooLarge(f"response body larger than the {self.max_bytes}-byte cap")
            check()
            yield chunk


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context (CA bundle loaded once) for every client of the process.

    Perf (docs/performance.md): `httpx.Client()` otherwise builds a new context per client, which loads
    the CA bundle, ~20 ms of CPU under the GIL; the worker creates a client per job, so 32 jobs starting
    together queued ~0.7 s of CPU behind each other. An SSLContext is safe to share between threads."""
    return httpx.create_ssl_context()


class LimitedTransport(httpx.HTTPTransport):
    """httpx's transport with the deadline enforced on the pool wait and every socket operation, and
    response bodies capped at `max_response_bytes`.

    `allow_compression=False` refuses a compressed body outright (the client asks for `identity`): one
    64 KiB gzip chunk can inflate to ~64 MB before the cap sees it. Proxies from the environment are
    never used (a proxy would connect on our behalf, past `network_backend`)."""

    def __init__(
        self,
        *,
        max_response_bytes: int,
        allow_compression: bool = True,
        network_backend: httpcore.NetworkBackend | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits()
        super().__init__(verify=tls_context(), trust_env=False, limits=limits)
        # httpx takes no network backend, so the pool it just built is replaced by one that uses ours
        # (same arguments otherwise). Checked by tests/app/test_http_limits.py.
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=DeadlineBackend(network_backend),
        )
        self._max_response_bytes = max_response_bytes
        self._allow_compression = allow_compression

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        request.extensions["timeout"] = {name: clip(value) for name, value in timeouts.items()}
        try:
            response = super().handle_request(request)
        except httpx.TimeoutException:
            check()
            raise
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if not self._allow_compression and encoding not in ("", "identity"):
            response.close()
            raise ResponseTooLarge(f"response body compressed ({encoding}) though identity was asked")
        capped = CappedResponse(
            response.status_code,
            headers=response.headers,
            stream=response.stream,
            extensions=response.extensions,
            request=request,
        )
        capped.max_bytes = self._max_response_bytes
        return capped
