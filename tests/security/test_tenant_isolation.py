"""Tenant isolation with two tenants, through every API route and in the database (RLS).

tests/app/test_rls.py covers enhancement_jobs read/update/insert; this adds every tenant table, the
SECURITY DEFINER helpers, each HTTP route, and the worker's outbound calls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from app.signing import sign
from harness.fake_servicedesk import FakeServiceDesk
from harness.processes import WorkerProcess
from harness.stack import Stack, TenantFixture

TENANT_TABLES = ("tenants", "enhancement_jobs", "enhancement_history", "ticket_history")


@pytest.fixture(scope="module")
def finished_jobs(
    stack: Stack,
    client_module: httpx.Client,
    worker: WorkerProcess,
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
) -> dict[str, str]:
    """One succeeded job per tenant, with history rows in every table."""
    jobs: dict[str, str] = {}
    for tenant in (tenant_a, tenant_b):
        response = stack.post_webhook(client_module, tenant, stack.new_ticket(tenant))
        assert response.status_code == 202
        jobs[tenant.id] = response.json()["job_id"]
    for job_id in jobs.values():
        assert stack.wait_for_job(job_id)["status"] == "succeeded"
    return jobs


@pytest.fixture(scope="module")
def client_module(api: object) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=15) as http:  # type: ignore[attr-defined]
        yield http


def _as(conn: Connection, tenant_id: str) -> None:
    conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": tenant_id})


# HTTP routes


def test_job_route_other_tenant_is_404_or_401(
    stack: Stack,
    client: httpx.Client,
    finished_jobs: dict[str, str],
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
) -> None:
    a_job, b_job = finished_jobs["tenant-a"], finished_jobs["tenant-b"]
    own = client.get(f"/api/v1/jobs/{a_job}", headers=stack.job_headers(tenant_a, f"/api/v1/jobs/{a_job}"))
    assert own.status_code == 200 and own.json()["job_id"] == a_job
    # B, correctly signed by B, asks for A's job: RLS hides it.
    other = client.get(f"/api/v1/jobs/{a_job}", headers=stack.job_headers(tenant_b, f"/api/v1/jobs/{a_job}"))
    assert other.status_code == 404
    # B's secret presented as tenant A (or the reverse): not authenticated.
    spoofed = {**stack.job_headers(tenant_b, f"/api/v1/jobs/{b_job}"), "X-Tenant-ID": tenant_a.id}
    assert client.get(f"/api/v1/jobs/{b_job}", headers=spoofed).status_code == 401
    # A signature for one path does not open another.
    moved = stack.job_headers(tenant_b, f"/api/v1/jobs/{b_job}")
    assert client.get(f"/api/v1/jobs/{a_job}", headers=moved).status_code == 401
    # The 404 looks like a job that does not exist at all.
    missing = uuid.uuid4()
    unknown = client.get(
        f"/api/v1/jobs/{missing}", headers=stack.job_headers(tenant_b, f"/api/v1/jobs/{missing}")
    )
    assert unknown.status_code == 404 and unknown.json() == other.json()


def test_webhook_route_tenant_is_bound_to_its_secret(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    ticket = stack.new_ticket(tenant_a)
    body = stack.payload(ticket)
    before = (stack.job_count("tenant-a"), stack.job_count("tenant-b"))
    as_b_signed_by_a = {**stack.webhook_headers(tenant_a, body), "X-Tenant-ID": tenant_b.id}
    assert client.post("/webhook/servicedesk", content=body, headers=as_b_signed_by_a).status_code == 401
    claims_b = stack.payload(ticket, tenant_id="tenant-b")
    assert (
        client.post(
            "/webhook/servicedesk", content=claims_b, headers=stack.webhook_headers(tenant_a, claims_b)
        ).status_code
        == 422
    )
    assert (stack.job_count("tenant-a"), stack.job_count("tenant-b")) == before


def test_unauthenticated_routes_carry_no_tenant_data(
    client: httpx.Client, finished_jobs: dict[str, str]
) -> None:
    metrics = client.get("/metrics").text
    ready = client.get("/api/v1/ready").text
    openapi = client.get("/openapi.json").text
    for job_id in finished_jobs.values():
        for page in (metrics, ready, openapi):
            assert job_id not in page
    assert "tenant-a" not in metrics and "tenant-b" not in metrics


def test_worker_uses_the_jobs_own_tenant_upstream(
    stack: Stack,
    client: httpx.Client,
    worker: WorkerProcess,
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
    fake_servicedesk: FakeServiceDesk,
) -> None:
    """Tenant B names a ticket that exists only in tenant A's ServiceDesk Plus: the worker asks B's
    instance with B's credential, gets 404, fails the job, and A's ticket is never touched."""
    ticket = stack.new_ticket(tenant_a)
    response = stack.post_webhook(client, tenant_b, ticket)
    assert response.status_code == 202
    job = stack.wait_for_job(response.json()["job_id"])
    assert job["status"] == "failed" and "404" in (job["error"] or "")
    assert fake_servicedesk.notes_for(tenant_a.instance, ticket) == []
    touched = [r for r in fake_servicedesk.requests if ticket in r["path"]]
    assert touched and all(r["path"].startswith(f"/{tenant_b.instance}/") for r in touched)


# Database (RLS)


def test_every_tenant_table_has_rls_and_a_tenant_policy(stack: Stack) -> None:
    with stack.owner.connect() as conn:
        with_tenant_column = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
                    " AND column_name IN ('tenant_id') UNION SELECT 'tenants'"
                )
            )
        }
        rls = dict(conn.execute(text("SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(:t)"),
                                {"t": list(with_tenant_column)}).all())  # fmt: skip
        policies = {
            r[0] for r in conn.execute(text("SELECT tablename FROM pg_policies WHERE schemaname='public'"))
        }
    assert set(TENANT_TABLES) <= with_tenant_column
    assert all(rls.get(table) for table in with_tenant_column), rls
    assert with_tenant_column <= policies


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_each_tenant_sees_only_its_rows(
    stack: Stack, app_conn: Connection, finished_jobs: dict[str, str], table: str
) -> None:
    column = "id" if table == "tenants" else "tenant_id"
    seen: dict[str, set[str]] = {}
    for tenant in ("tenant-a", "tenant-b", ""):
        with app_conn.begin():
            if tenant:
                _as(app_conn, tenant)
            seen[tenant] = {str(r[0]) for r in app_conn.execute(text(f"SELECT {column} FROM {table}"))}
    assert seen["tenant-a"] == {"tenant-a"}
    assert seen["tenant-b"] == {"tenant-b"}
    assert seen[""] == set()  # no tenant set: nothing


@pytest.mark.parametrize(
    ("table", "column"), [("enhancement_history", "note_id"), ("ticket_history", "subject")]
)
def test_history_of_another_tenant_cannot_be_written(
    app_conn: Connection, finished_jobs: dict[str, str], table: str, column: str
) -> None:
    """Either the role may not UPDATE the table at all, or RLS hides the other tenant's rows."""
    try:
        with app_conn.begin():
            _as(app_conn, "tenant-a")
            updated = app_conn.execute(
                text(f"UPDATE {table} SET {column} = 'x' WHERE job_id = :j"), {"j": finished_jobs["tenant-b"]}
            )
            assert updated.rowcount == 0
    except DBAPIError as error:
        assert "permission denied" in str(error)
    with pytest.raises(DBAPIError, match="permission denied"), app_conn.begin():
        _as(app_conn, "tenant-a")
        app_conn.execute(text(f"DELETE FROM {table}"))  # the role has no DELETE at all


def test_security_definer_helpers_return_no_tenant_rows(
    app_conn: Connection, finished_jobs: dict[str, str]
) -> None:
    with app_conn.begin():
        counts = app_conn.execute(text("SELECT * FROM app_job_status_counts()")).mappings().all()
    assert counts and all(set(row) == {"status", "count"} for row in counts)
    with app_conn.begin():
        cols = app_conn.execute(text("SELECT * FROM app_claim_stale_jobs(3600, 0)")).keys()
    assert set(cols) == {"job_id", "tenant_id"}


def test_tenant_secret_of_b_is_not_readable_with_a_job_signature(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture, finished_jobs: dict[str, str]
) -> None:
    """The job route's signature is the tenant's webhook secret over the request line: a body-style
    signature (what an intercepted webhook carries) does not authenticate a read.

    The timestamp is fresh, so the skew check passes and the signature is what is refused; the same
    headers with the request-line signature read the job, so the refusal is the signature's."""
    path = f"/api/v1/jobs/{finished_jobs['tenant-a']}"
    headers = stack.job_headers(tenant_a, path)
    assert client.get(path, headers=headers).status_code == 200
    body_style = {
        **headers,
        "X-ServiceDesk-Signature": sign(tenant_a.webhook_secret, json.dumps({}).encode()),
    }
    assert client.get(path, headers=body_style).status_code == 401
