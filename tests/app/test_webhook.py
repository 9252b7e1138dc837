"""POST /webhook/servicedesk against the real API process: every bad input is a 4xx and stores nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from app.signing import sign
from harness.processes import ApiProcess, run_cli
from harness.stack import Stack, TenantFixture


def _headers(tenant: TenantFixture, body: bytes, **overrides: str) -> dict[str, str]:
    return {**Stack.webhook_headers(tenant, body), **overrides}


def test_accepted_delivery_is_stored_as_queued(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture
) -> None:
    body = stack.payload(f"T{uuid.uuid4().hex[:10]}")
    response = client.post("/webhook/servicedesk", content=body, headers=_headers(tenant_a, body))
    assert response.status_code == 202
    job = stack.job(response.json()["job_id"])
    assert (job["tenant_id"], job["ticket_id"]) == ("tenant-a", json.loads(body)["ticket_id"])
    # A worker of the session may already have taken it. A claim only takes a queued job (or one whose
    # lease ran out) and counts an attempt, so: no attempt means the row is as the API stored it,
    # and an attempt means it was claimable, i.e. stored queued.
    if job["attempts"] == 0:
        stored = (job["status"], job["note_state"], job["finished_at"], job["error"])
        assert stored == ("queued", "none", None, None)
    else:
        assert job["status"] in {"running", "succeeded"}, job["error"]


def test_same_delivery_twice_gives_the_same_job(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture
) -> None:
    body = stack.payload(f"T{uuid.uuid4().hex[:10]}")
    before = stack.job_count("tenant-a")
    first = client.post("/webhook/servicedesk", content=body, headers=_headers(tenant_a, body))
    second = client.post("/webhook/servicedesk", content=body, headers=_headers(tenant_a, body))
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["job_id"] == second.json()["job_id"]
    assert second.json()["duplicate"] is True
    assert stack.job_count("tenant-a") == before + 1


def test_delivery_id_header_deduplicates(stack: Stack, client: httpx.Client, tenant_a: TenantFixture) -> None:
    ticket = f"T{uuid.uuid4().hex[:10]}"
    delivery = uuid.uuid4().hex
    first_body = stack.payload(ticket)
    retry_body = stack.payload(ticket, sent_at="a later timestamp")  # a retried delivery may differ in bytes
    first = client.post(
        "/webhook/servicedesk",
        content=first_body,
        headers=_headers(tenant_a, first_body, **{"X-Delivery-ID": delivery}),
    )
    again = client.post(
        "/webhook/servicedesk",
        content=retry_body,
        headers=_headers(tenant_a, retry_body, **{"X-Delivery-ID": delivery}),
    )
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["job_id"] == again.json()["job_id"]


def test_same_ticket_different_body_is_a_new_job(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture
) -> None:
    ticket = f"T{uuid.uuid4().hex[:10]}"
    one, two = stack.payload(ticket), stack.payload(ticket, subject="updated subject")
    first = client.post("/webhook/servicedesk", content=one, headers=_headers(tenant_a, one))
    second = client.post("/webhook/servicedesk", content=two, headers=_headers(tenant_a, two))
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["job_id"] != second.json()["job_id"]


BODY = json.dumps({"ticket_id": "100", "subject": "s", "description": "d"}).encode()
Headers = dict[str, str]


def _without(name: str) -> Callable[[Headers], Headers]:
    return lambda h: {k: v for k, v in h.items() if k != name}


def _with(name: str, value: str) -> Callable[[Headers], Headers]:
    return lambda h: {**h, name: value}


def _unprefixed(h: Headers) -> Headers:
    return {**h, "X-ServiceDesk-Signature": h["X-ServiceDesk-Signature"].removeprefix("sha256=")}


def _same(h: Headers) -> Headers:
    return h


# (name, body, how the correctly signed headers are spoiled, expected status)
BAD_INPUTS: list[tuple[str, bytes, Callable[[Headers], Headers], int]] = [
    ("missing signature", BODY, _without("X-ServiceDesk-Signature"), 401),
    ("missing tenant", BODY, _without("X-Tenant-ID"), 401),
    ("wrong signature", BODY, _with("X-ServiceDesk-Signature", sign("not-the-secret-at-all", BODY)), 401),
    ("signature without prefix", BODY, _unprefixed, 401),
    ("unknown tenant", BODY, _with("X-Tenant-ID", "no-such-tenant"), 401),
    ("malformed tenant header", BODY, _with("X-Tenant-ID", "../../etc"), 401),
    ("wrong content type", BODY, _with("Content-Type", "text/plain"), 415),
    ("form content type", BODY, _with("Content-Type", "application/x-www-form-urlencoded"), 415),
    ("malformed json", b'{"ticket_id": ', _same, 422),
    ("json array", b"[1, 2]", _same, 422),
    ("missing ticket_id", json.dumps({"subject": "s"}).encode(), _same, 422),
    ("missing subject", json.dumps({"ticket_id": "1"}).encode(), _same, 422),
    ("ticket_id wrong type", json.dumps({"ticket_id": True, "subject": "s"}).encode(), _same, 422),
    ("ticket_id with slash", json.dumps({"ticket_id": "1/../2", "subject": "s"}).encode(), _same, 422),
    (
        "tenant mismatch",
        json.dumps({"ticket_id": "1", "subject": "s", "tenant_id": "tenant-b"}).encode(),
        _same,
        422,
    ),
    ("not utf-8", b'{"ticket_id": "\xff", "subject": "s"}', _same, 422),
    ("bad delivery id", BODY, _with("X-Delivery-ID", "has spaces in it"), 422),
]


@pytest.mark.parametrize(
    ("name", "body", "spoil", "expected"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_is_rejected_and_nothing_stored(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    name: str,
    body: bytes,
    spoil: Callable[[Headers], Headers],
    expected: int,
) -> None:
    before = stack.job_count()
    response = client.post(
        "/webhook/servicedesk", content=body, headers=spoil(Stack.webhook_headers(tenant_a, body))
    )
    assert response.status_code == expected, name
    assert "detail" in response.json(), name
    assert stack.job_count() == before, name


def test_body_signed_for_other_bytes_is_401(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture
) -> None:
    before = stack.job_count()
    headers = Stack.webhook_headers(tenant_a, BODY)
    response = client.post("/webhook/servicedesk", content=BODY + b" ", headers=headers)
    assert response.status_code == 401
    assert stack.job_count() == before


def test_disabled_tenant_is_refused(stack: Stack, client: httpx.Client) -> None:
    tenant = stack.add_tenant(f"tenant-off-{uuid.uuid4().hex[:6]}")
    body = stack.payload("1")
    assert (
        client.post("/webhook/servicedesk", content=body, headers=_headers(tenant, body)).status_code == 202
    )
    assert run_cli(stack.env, "tenants", "disable", tenant.id).returncode == 0
    before = stack.job_count(tenant.id)
    body = stack.payload("2")
    response = client.post("/webhook/servicedesk", content=body, headers=_headers(tenant, body))
    assert response.status_code == 401
    assert stack.job_count(tenant.id) == before


def test_body_over_limit_is_413(stack: Stack, client: httpx.Client, tenant_a: TenantFixture) -> None:
    body = stack.payload("1", description="x" * (256 * 1024))
    before = stack.job_count()
    response = client.post("/webhook/servicedesk", content=body, headers=_headers(tenant_a, body))
    assert response.status_code == 413
    assert stack.job_count() == before


def test_chunked_body_over_limit_is_413(stack: Stack, client: httpx.Client, tenant_a: TenantFixture) -> None:
    body = stack.payload("1", description="x" * (300 * 1024))

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    before = stack.job_count()
    response = client.post("/webhook/servicedesk", content=chunks(), headers=_headers(tenant_a, body))
    assert response.status_code == 413
    assert stack.job_count() == before


def test_database_outage_is_503_with_retry_after(stack: Stack, tenant_a: TenantFixture) -> None:
    """A second API whose database is unreachable: the webhook answers 503 + Retry-After, never 500."""
    env = {**stack.env, "DATABASE_URL": stack.env["DATABASE_URL"].replace(f":{stack.postgres.port}/", ":1/")}
    api = ApiProcess(env)
    try:
        api.start_ready()  # liveness does not depend on the database
        body = stack.payload("1")
        response = httpx.post(
            f"{api.url}/webhook/servicedesk", content=body, headers=_headers(tenant_a, body), timeout=30
        )
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        assert response.json()["detail"].startswith("database unavailable")
        ready = httpx.get(f"{api.url}/api/v1/ready", timeout=30)
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"]["status"] == "error"
        assert checks["redis"]["status"] == "ok"
    finally:
        api.stop()


def test_connections_closed_by_the_server_are_replaced_not_a_503(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture
) -> None:
    """A failover or restart closes every pooled connection; the webhook's pool (app/db/ingest.py)
    does not ping before use, so the first delivery after it must retry on a fresh connection."""
    for n in range(3):  # several connections in the pool, all idle afterwards
        body = stack.payload(f"warm-{uuid.uuid4().hex[:8]}-{n}")
        assert client.post("/webhook/servicedesk", content=body, headers=_headers(tenant_a, body)).is_success
    assert stack.terminate_app_connections() >= 1
    body = stack.payload(f"after-{uuid.uuid4().hex[:8]}")
    response = client.post("/webhook/servicedesk", content=body, headers=_headers(tenant_a, body))
    assert response.status_code == 202, response.text
    assert stack.job(response.json()["job_id"])["status"] in {"queued", "running", "succeeded", "failed"}
