"""Annotated dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from starlette.requests import ClientDisconnect

from app.api.services import Services
from app.metrics import WEBHOOK_OUTCOMES
from app.settings import Settings


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
