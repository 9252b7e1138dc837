"""Probes, metrics, docs, errors and security headers of the real API process."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from harness.stack import Stack, TenantFixture

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def test_health_is_liveness_only(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_checks_database_schema_and_redis(client: httpx.Client) -> None:
    response = client.get("/api/v1/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {
        "database": {"status": "ok", "detail": None},
        "redis": {"status": "ok", "detail": None},
    }


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/no/such/path", 404),
        ("DELETE", "/health", 405),
        ("GET", "/webhook/servicedesk", 405),
        ("POST", "/webhook/servicedesk", 415),
        ("GET", "/metrics", 200),
    ],
)
def test_security_headers_on_every_response(
    client: httpx.Client, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    if status >= 400:
        assert "detail" in response.json()


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert len(generated) == 32


def test_docs_and_openapi(client: httpx.Client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    schema = client.get("/openapi.json").json()
    assert {"/webhook/servicedesk", "/api/v1/jobs/{job_id}", "/api/v1/ready", "/health"} <= set(
        schema["paths"]
    )


def test_metrics_cover_requests_webhooks_jobs_and_queue(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture
) -> None:
    stack.post_webhook(client, tenant_a, f"M{uuid.uuid4().hex[:8]}")
    client.post("/webhook/servicedesk", content=b"{}", headers={"Content-Type": "application/json"})
    time.sleep(0.1)
    text = client.get("/metrics").text
    assert 'ai_agents_http_requests_total{method="POST",route="/webhook/servicedesk",status="202"}' in text
    assert 'ai_agents_webhook_outcomes_total{outcome="accepted"}' in text
    assert 'ai_agents_webhook_outcomes_total{outcome="unauthorized"}' in text
    assert "ai_agents_http_request_duration_seconds_bucket" in text
    assert 'ai_agents_jobs{status="queued"}' in text
    assert "ai_agents_queue_depth" in text
    assert "/no/such/path" not in text  # unmatched paths share one label


def _job_path(job_id: str) -> str:
    return f"/api/v1/jobs/{job_id}"


def test_job_status_requires_the_owning_tenant(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    job_id = stack.post_webhook(client, tenant_a, f"J{uuid.uuid4().hex[:8]}").json()["job_id"]
    path = _job_path(job_id)

    own = client.get(path, headers=Stack.job_headers(tenant_a, path))
    assert own.status_code == 200
    assert own.json()["job_id"] == job_id
    assert own.json()["status"] in {"queued", "running", "succeeded", "failed"}

    # Tenant B, correctly signed with its own secret, cannot see tenant A's job (RLS): 404, not 403.
    assert client.get(path, headers=Stack.job_headers(tenant_b, path)).status_code == 404
    assert client.get(path).status_code == 401
    stale = Stack.job_headers(tenant_a, path, at=time.time() - 3600)
    assert client.get(path, headers=stale).status_code == 401
    forged = {**Stack.job_headers(tenant_a, path), "X-ServiceDesk-Signature": "sha256=" + "0" * 64}
    assert client.get(path, headers=forged).status_code == 401
    other = _job_path(str(uuid.uuid4()))
    assert client.get(other, headers=Stack.job_headers(tenant_a, other)).status_code == 404
    # Authentication comes first: a malformed id is a 422 only for its tenant, unauthenticated a 401.
    assert client.get("/api/v1/jobs/not-a-uuid").status_code == 401
    malformed = "/api/v1/jobs/not-a-uuid"
    assert client.get(malformed, headers=Stack.job_headers(tenant_a, malformed)).status_code == 422
