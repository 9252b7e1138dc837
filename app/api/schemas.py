"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr


def _ticket_id(value: object) -> object:
    # ServiceDesk Plus ids are numeric but templates often send them as strings; accept both.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


TicketId = Annotated[StrictStr, BeforeValidator(_ticket_id), Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class WebhookPayload(BaseModel):
    """What the ServiceDesk Plus webhook template sends. Extra fields are allowed and ignored."""

    model_config = ConfigDict(extra="allow")

    ticket_id: TicketId
    subject: StrictStr = Field(min_length=1, max_length=1000)
    description: StrictStr = ""
    tenant_id: StrictStr | None = None  # optional echo of X-Tenant-ID; must match when present


class JobAccepted(BaseModel):
    job_id: uuid.UUID
    duplicate: bool = False


class JobView(BaseModel):
    job_id: uuid.UUID
    ticket_id: str
    status: str
    attempts: int
    error: str | None
    note_id: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class DependencyCheck(BaseModel):
    status: str  # ok | error
    detail: str | None = None


class Readiness(BaseModel):
    status: str  # ready | not_ready
    checks: dict[str, DependencyCheck]
