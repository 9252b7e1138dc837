"""Unauthenticated requests for made-up tenants: what they cost the database, and what they reveal.

An API process of this module's own, so its look-up counter (`ai_agents_tenant_lookups_total`) counts
only these requests; each test reads it before and after.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.api.tenant_auth import LOOKUP_BURST, LOOKUPS_PER_SECOND
from app.signing import sign
from harness.processes import ApiProcess
from harness.stack import Stack, TenantFixture

WEBHOOK = "/webhook/servicedesk"


@pytest.fixture(scope="module")
def api_alone(stack: Stack) -> Iterator[httpx.Client]:
    process = ApiProcess(stack.env)
    process.start_ready()
    try:
        with httpx.Client(base_url=process.url, timeout=15) as client:
            yield client
    finally:
        process.stop()


def _lookups(client: httpx.Client) -> dict[str, float]:
    text = client.get("/metrics").text
    found = re.findall(r'^ai_agents_tenant_lookups_total\{result="(\w+)"\} (\S+)$', text, re.M)
    return {result: float(value) for result, value in found}


def _since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        result: after.get(result, 0) - before.get(result, 0) for result in ("found", "unknown", "refused")
    }


def _probe(client: httpx.Client, tenant_id: str, body: bytes) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Tenant-ID": tenant_id,
        "X-ServiceDesk-Signature": sign("guessed-secret-0123456789", body),
    }
    return client.post(WEBHOOK, content=body, headers=headers)


# First: a fresh process, its look-up budget full.
def test_unknown_tenant_and_wrong_signature_get_the_same_answer(
    stack: Stack, api_alone: httpx.Client, tenant_a: TenantFixture
) -> None:
    body = stack.payload("1")
    unknown = _probe(api_alone, f"nobody-{uuid.uuid4().hex[:8]}", body)
    wrong = _probe(api_alone, tenant_a.id, body)
    assert (
        (unknown.status_code, unknown.json())
        == (wrong.status_code, wrong.json())
        == (
            401,
            {"detail": "invalid tenant or signature"},
        )
    )


def test_an_unknown_tenant_is_looked_up_once_not_per_request(stack: Stack, api_alone: httpx.Client) -> None:
    body = stack.payload("1")
    tenant_id = f"nobody-{uuid.uuid4().hex[:8]}"
    before = _lookups(api_alone)
    answers = {_probe(api_alone, tenant_id, body).status_code for _ in range(100)}
    assert answers == {401}
    assert _since(before, _lookups(api_alone))["unknown"] == 1  # was one transaction per request


def test_a_flood_of_made_up_tenants_costs_the_database_a_bounded_rate(
    stack: Stack, api_alone: httpx.Client
) -> None:
    body = stack.payload("1")
    time.sleep(LOOKUP_BURST / LOOKUPS_PER_SECOND)  # a full bucket, whatever ran before
    before = _lookups(api_alone)
    started = time.monotonic()
    statuses = [
        _probe(api_alone, f"made-up-{n}-{uuid.uuid4().hex[:6]}", body).status_code for n in range(300)
    ]
    elapsed = time.monotonic() - started
    lookups = _since(before, _lookups(api_alone))
    assert set(statuses) <= {401, 503}
    assert lookups["found"] + lookups["unknown"] <= LOOKUP_BURST + LOOKUPS_PER_SECOND * elapsed + 1
    assert statuses.count(503) == lookups["refused"]
    if elapsed < (300 - LOOKUP_BURST) / LOOKUPS_PER_SECOND:  # faster than the bucket refills
        assert lookups["refused"] > 0
