"""POST /webhook/servicedesk: verify, store the job, enqueue after commit, answer 202."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Annotated

import structlog
from fastapi import APIRouter, Header, HTTPException, Response, status
from pydantic import ValidationError

from app.api.deps import UNAUTHORIZED, RawJsonBody, ServicesDep, WebhookTenant
from app.api.schemas import JobAccepted, WebhookPayload
from app.metrics import WEBHOOK_OUTCOMES

router = APIRouter(tags=["webhook"])

DeliveryIdHeader = Annotated[str | None, Header(alias="X-Delivery-ID")]
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _reject(outcome: str, code: int, detail: object) -> HTTPException:
    WEBHOOK_OUTCOMES.labels(outcome).inc()
    return HTTPException(code, detail)


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Duplicate keys are legal-but-ambiguous JSON: parsers disagree on which value wins, so a signed
    # body could mean one thing here and another to whoever else reads it. Refused (422).
    data = dict(pairs)
    if len(data) != len(pairs):
        raise _DuplicateKeyError("duplicate key")
    return data


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity: Python extensions, not RFC 8259


def _parse(body: bytes, tenant_id: str) -> WebhookPayload:
    try:
        # UTF-8 only (RFC 8259 §8.1); json.loads(bytes) would also guess UTF-16/32.
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKeyError:
        raise _reject("invalid", 422, "body has duplicate keys") from None
    # RecursionError: deeply nested JSON (found by tests/security: a 200 KB `[[[[...]]]]` was a 500).
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _reject("invalid", 422, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _reject("invalid", 422, "body must be a JSON object")
    try:
        payload = WebhookPayload.model_validate(data)
    except ValidationError as error:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
        raise _reject("invalid", 422, detail) from None
    if payload.tenant_id is not None and payload.tenant_id != tenant_id:
        raise _reject("invalid", 422, "tenant_id does not match X-Tenant-ID")
    return payload


def _describe_request(outcome: str, job_id: uuid.UUID, ticket_id: str) -> None:
    # One log line per delivery: the access line (app/api/middleware.py) carries these fields. A line
    # of its own per webhook was a tenth of the API's CPU at load (docs/performance.md).
    structlog.contextvars.bind_contextvars(webhook_outcome=outcome, job_id=str(job_id), ticket_id=ticket_id)


def _dedupe_key(delivery_id: str | None, ticket_id: str, body_sha256: str) -> str:
    if delivery_id is not None:
        if not _DELIVERY_ID.match(delivery_id):
            raise _reject("invalid", 422, "X-Delivery-ID is malformed")
        return f"delivery:{delivery_id}"
    return f"body:{ticket_id}:{body_sha256}"


@router.post(
    "/webhook/servicedesk",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": JobAccepted, "description": "Duplicate delivery: the existing job"},
        401: {"description": "Unknown or disabled tenant, missing or wrong signature"},
        413: {"description": "Body too large"},
        415: {"description": "Content type is not application/json"},
        422: {"description": "Malformed JSON or payload"},
        503: {"description": "Database or secrets unavailable; retry after Retry-After"},
    },
    # The body is read raw (it is what the signature covers), so FastAPI cannot infer it; without this
    # the schema said "no body" and a schema-valid request was a 415 (found by tests/security schemathesis).
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookPayload.model_json_schema()}},
        }
    },
)
async def receive_webhook(
    body: RawJsonBody,
    *,
    tenant: WebhookTenant,
    services: ServicesDep,
    response: Response,
    delivery_id: DeliveryIdHeader = None,
) -> JobAccepted:
    # Async on purpose, unlike the other routes: the hot path runs on the event loop, with one
    # database call, no thread hop; the publish follows in the background (app/api/publisher.py).
    payload = _parse(body, tenant.id)
    body_sha256 = hashlib.sha256(body).hexdigest()
    key = _dedupe_key(delivery_id, payload.ticket_id, body_sha256)
    accepted = await services.ingest.accept_delivery(
        tenant_id=tenant.id, ticket_id=payload.ticket_id, dedupe_key=key, body_sha256=body_sha256
    )
    if accepted is None:  # disabled since its row was cached
        raise _reject("unauthorized", status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
    # After commit: a worker must never receive a job id it cannot see yet.
    if not accepted.created:
        WEBHOOK_OUTCOMES.labels("duplicate").inc()
        response.status_code = status.HTTP_200_OK
        _describe_request("duplicate", accepted.job_id, payload.ticket_id)
        return JobAccepted(job_id=accepted.job_id, duplicate=True)
    services.publisher.submit(accepted.job_id, tenant.id)
    WEBHOOK_OUTCOMES.labels("accepted").inc()
    _describe_request("accepted", accepted.job_id, payload.ticket_id)
    return JobAccepted(job_id=accepted.job_id)
