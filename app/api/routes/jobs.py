"""GET /api/v1/jobs/{job_id}: job status for the tenant that owns it.

Authentication reuses the tenant's webhook secret: the client signs `"{timestamp}\\nGET\\n{path}"`
(see app.signing.job_request_message) and sends `X-Tenant-ID`, `X-Signature-Timestamp` and
`X-ServiceDesk-Signature`. The timestamp bounds replay to JOB_AUTH_MAX_SKEW_SECONDS.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status

from app.api.deps import ServicesDep, SignatureHeader, TenantIdHeader
from app.api.schemas import JobView
from app.db import jobs
from app.signing import job_request_message, verify

router = APIRouter(prefix="/api/v1", tags=["jobs"])
TimestampHeader = Annotated[str | None, Header(alias="X-Signature-Timestamp")]
UNAUTHORIZED = "invalid tenant or signature"


def _fresh(timestamp: str | None, max_skew: int) -> bool:
    if timestamp is None or not timestamp.isdigit():
        return False
    return abs(time.time() - int(timestamp)) <= max_skew


@router.get(
    "/jobs/{job_id}",
    responses={
        401: {"description": "Bad tenant, signature or timestamp"},
        404: {"description": "No such job"},
    },
)
def get_job(
    job_id: uuid.UUID,
    *,
    request: Request,
    services: ServicesDep,
    tenant_id: TenantIdHeader = None,
    signature: SignatureHeader = None,
    timestamp: TimestampHeader = None,
) -> JobView:
    if not tenant_id or not _fresh(timestamp, services.settings.job_auth_max_skew_seconds):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
    tenant = services.tenants.get(tenant_id)
    if tenant is None or not tenant.enabled:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
    message = job_request_message(str(timestamp), "GET", request.url.path)
    if not verify(signature, message, services.tenants.secret(tenant).webhook_secrets):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
    # Row-level security scopes the read: another tenant's job id is simply not found.
    with services.db.tenant(tenant.id) as session:
        job = jobs.get_job(session, job_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "job not found")
        return JobView(
            job_id=job.id,
            ticket_id=job.ticket_id,
            status=job.status.value,
            attempts=job.attempts,
            error=job.error,
            note_id=job.note_id,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
        )
