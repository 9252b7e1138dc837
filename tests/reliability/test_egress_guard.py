"""The real worker refuses tenants whose ServiceDesk Plus URL leads to loopback unless the local-run flag
allows it, whatever the URL's spelling (a literal, a name, the unspecified address), and sends nothing.

Only loopback destinations appear here (the fake listens on 127.0.0.1): the private, link-local and
metadata addresses are refused before any connection in tests/app/test_egress.py, and a test must not
risk a packet to them. The URLs are written to the database directly, as an old row or a change made
behind the CLI's back would be: the worker checks at connect time whatever the row says.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import text

from harness.fake_servicedesk import FakeServiceDesk
from harness.faults import WorkerFleet, wait_all_finished
from harness.stack import Stack, TenantFixture

pytestmark = pytest.mark.slow


def _point(stack: Stack, tenant: TenantFixture, url: str) -> None:
    with stack.owner.begin() as conn:
        conn.execute(
            text("UPDATE tenants SET servicedesk_base_url = :url WHERE id = :id"),
            {"url": url, "id": tenant.id},
        )


def _post(stack: Stack, client: httpx.Client, tenant: TenantFixture) -> tuple[str, str]:
    ticket = stack.new_ticket(tenant)
    response = stack.post_webhook(client, tenant, ticket)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"]), ticket


def test_loopback_destinations_are_refused_unless_allowed(
    stack: Stack,
    client: httpx.Client,
    fake_servicedesk: FakeServiceDesk,
    fleet: WorkerFleet,
    record: Callable[..., None],
) -> None:
    port = fake_servicedesk.port
    suffix = uuid.uuid4().hex[:6]
    literal = stack.add_tenant(f"egress-literal-{suffix}")  # http://127.0.0.1:<port>/<instance>
    named = stack.add_tenant(f"egress-named-{suffix}")
    unspecified = stack.add_tenant(f"egress-any-{suffix}")
    _point(stack, named, f"http://localhost:{port}/{named.instance}")
    _point(stack, unspecified, f"http://0.0.0.0:{port}/{unspecified.instance}")
    cases = {literal.id: "(loopback)", named.id: "(loopback)", unspecified.id: "(unspecified)"}

    worker = fleet.start(SDP_ALLOW_LOOPBACK="false")
    jobs = {_post(stack, client, tenant)[0]: tenant for tenant in (literal, named, unspecified)}
    rows = wait_all_finished(stack, list(jobs), timeout=60)

    problems = []
    for job_id, tenant in jobs.items():
        row = rows[job_id]
        error = str(row["error"] or "")
        if row["status"] != "failed" or "refused" not in error or cases[tenant.id] not in error:
            problems.append(
                f"{tenant.id}: {row['status']} ({error!r}), expected failed, refused {cases[tenant.id]}"
            )
        elif row["attempts"] != 1:
            problems.append(f"{tenant.id}: {row['attempts']} attempts, a refusal is not retried")
        reached = [r for r in fake_servicedesk.requests if r["path"].startswith(f"/{tenant.instance}/")]
        if reached:
            problems.append(f"{tenant.id}: {len(reached)} requests reached its ServiceDesk Plus")
    refusals = {tenant.id: str(rows[job_id]["error"]) for job_id, tenant in jobs.items()}
    worker.stop(30)

    # The same worker with the local-run flag: loopback is allowed, nothing else changes.
    fleet.start(SDP_ALLOW_LOOPBACK="true")
    job_id, ticket = _post(stack, client, literal)
    allowed = stack.wait_for_job(job_id, timeout=60)
    if allowed["status"] != "succeeded" or len(fake_servicedesk.notes_for(literal.instance, ticket)) != 1:
        problems.append(f"with the flag: {allowed['status']} ({allowed['error']})")
    record(refusals=refusals, with_flag=allowed["status"])
    assert not problems, "\n".join(problems)
