"""Annotated dependencies shared by the routers."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from starlette.requests import ClientDisconnect

from app.api.services import Services
from app.api.tenant_auth import LookupsExhausted, Unauthorized
from app.metrics import WEBHOOK_OUTCOMES
from app.settings import Settings
from app.signing import job_request_message
from app.tenants import TenantInfo


# Async although they do not await: FastAPI runs a plain `def` dependency in its thread pool, a thread
# hop per request for a dictionary read (found by profiling the webhook, docs/performance.md).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]

# Optional on purpose: a missing header is an authentication failure (401), not a schema error (422).
TenantIdHeader = Annotated[str | None, Header(alias="X-Tenant-ID")]
SignatureHeader = Annotated[str | None, Header(alias="X-ServiceDesk-Signature")]
TimestampHeader = Annotated[str | None, Header(alias="X-Signature-Timestamp")]
UNAUTHORIZED = "invalid tenant or signature"
# Unix seconds in ASCII digits: checked before int(), which takes other scripts' digits and raises on
# thousands of them (a 500 before this check).
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


async def read_json_body(request: Request, settings: SettingsDep) -> bytes:
    """The raw body, exactly as signed, refused early when it is not JSON or too large.

    Only the webhook uses it, hence the webhook outcome counters here."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        WEBHOOK_OUTCOMES.labels("unsupported_media_type").inc()
        raise HTTPException(415, "content type must be application/json")
    limit = settings.webhook_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        WEBHOOK_OUTCOMES.labels("too_large").inc()
        raise HTTPException(413, f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    # Counted while streaming: a chunked body has no Content-Length to trust.
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                WEBHOOK_OUTCOMES.labels("too_large").inc()
                raise HTTPException(413, f"body exceeds {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # The sender gave up (its timeout) before we read the body: nobody gets this answer. Found by
        # bench/ingest.py: it was an "unhandled_error" 500 with a full traceback per request, counted
        # as a server error and costing the most CPU exactly when the API is overloaded. 499 is
        # nginx's "client closed request".
        WEBHOOK_OUTCOMES.labels("client_disconnected").inc()
        raise HTTPException(499, "client disconnected") from None
    return b"".join(chunks)


RawJsonBody = Annotated[bytes, Depends(read_json_body)]


async def signed_request_line(
    request: Request, settings: SettingsDep, timestamp: TimestampHeader = None
) -> bytes:
    """What a request without a body signs: a fresh timestamp, the method and the path.

    The timestamp bounds replay to JOB_AUTH_MAX_SKEW_SECONDS."""
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
    if abs(time.time() - int(timestamp)) > settings.job_auth_max_skew_seconds:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
    return job_request_message(timestamp, request.method, request.url.path)


def _tenant_signed_over(
    signed_content: Callable[..., Awaitable[bytes]], on_refused: Callable[[], None] = lambda: None
) -> Callable[..., Awaitable[TenantInfo]]:
    """The one tenant authentication (app/api/tenant_auth.py), over what a route's requests sign."""

    # `signed` takes a default, not an Annotated hint: this module's annotations are strings, which
    # FastAPI resolves in the module's globals, where `signed_content` (a closure variable) is not.
    async def authenticated_tenant(
        services: ServicesDep,
        tenant_id: TenantIdHeader = None,
        signature: SignatureHeader = None,
        signed: bytes = Depends(signed_content),
    ) -> TenantInfo:
        try:
            return await services.auth.authenticate(tenant_id, signature, signed)
        except Unauthorized:
            on_refused()
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED) from None
        except LookupsExhausted:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "too many unknown tenants, retry later",
                headers={"Retry-After": "1"},
            ) from None

    return authenticated_tenant


def _count_unauthorized_webhook() -> None:
    WEBHOOK_OUTCOMES.labels("unauthorized").inc()


# A webhook is signed over its raw body (ServiceDesk Plus signs nothing else).
WebhookTenant = Annotated[
    TenantInfo, Depends(_tenant_signed_over(read_json_body, _count_unauthorized_webhook))
]
# A read is signed over its request line and a fresh timestamp.
SignedRequestTenant = Annotated[TenantInfo, Depends(_tenant_signed_over(signed_request_line))]
