"""GET /api/v1/jobs/{job_id}: job status for the tenant that owns it.

Authentication is the tenant's webhook secret over `"{timestamp}\\nGET\\n{path}"`
(app.signing.job_request_message), with `X-Tenant-ID`, `X-Signature-Timestamp` and
`X-ServiceDesk-Signature`: the same rule and caches as the webhook (app/api/tenant_auth.py).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status

from app.api.deps import ServicesDep, SignedRequestTenant
from app.api.schemas import JobView
from app.db import jobs

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.get(
    "/jobs/{job_id}",
    responses={
        401: {"description": "Bad tenant, signature or timestamp"},
        404: {"description": "No such job"},
    },
)
def get_job(job_id: uuid.UUID, *, tenant: SignedRequestTenant, services: ServicesDep) -> JobView:
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
