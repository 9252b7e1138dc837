"""Faults with real processes: broker outage (sweeper), a worker killed mid-post (no second note), and
a job whose attempts keep killing their worker (given up at TASK_MAX_RETRIES + 1 attempts).

They stop Redis and kill workers, so they live with the other fault tests, on the suite's own servers,
each with a worker of its own from `fleet`."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import text

from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.faults import WorkerFleet
from harness.http_fake import Fault
from harness.net import wait_until
from harness.prom import sample_value
from harness.redis_server import RedisServer
from harness.stack import Stack, TenantFixture

pytestmark = pytest.mark.slow


def test_broker_outage_loses_no_job(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    redis_server: RedisServer,
    fleet: WorkerFleet,
    fake_servicedesk: FakeServiceDesk,
) -> None:
    """The publish fails while the broker is down, so only the worker's sweeper can get the job run:
    with the sweeper off the job stays queued and this fails."""
    worker = fleet.start()
    ticket = stack.new_ticket(tenant_a)
    failed_before = _api_enqueue_failures(client)
    redis_server.stop()
    try:
        response = stack.post_webhook(client, tenant_a, ticket)
        assert response.status_code == 202  # stored; the publish failed and was not fatal
        job_id = response.json()["job_id"]
        assert stack.job(job_id)["status"] == "queued"
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["status"] == "error"
        # The broker stays down until the API has given the publish up: no message for this job
        # exists once it is back, whatever kombu's reconnects would otherwise deliver late.
        wait_until(
            lambda: _api_enqueue_failures(client) > failed_before, 30, what="the API's publish to fail"
        )
    finally:
        redis_server.start()
    job = stack.wait_for_job(job_id, timeout=60)
    assert job["status"] == "succeeded", job["error"]
    assert len(fake_servicedesk.notes_for(tenant_a.instance, ticket)) == 1
    assert sample_value(worker.metrics(), "ai_agents_sweeper_requeued_total") >= 1


def _api_enqueue_failures(client: httpx.Client) -> float:
    return sample_value(client.get("/metrics").text, "ai_agents_enqueue_failures_total")


def test_worker_killed_after_posting_does_not_post_twice(
    stack: Stack,
    client: httpx.Client,
    tenant_b: TenantFixture,
    fleet: WorkerFleet,
    fake_servicedesk: FakeServiceDesk,
) -> None:
    worker = fleet.start()
    ticket = stack.new_ticket(tenant_b)
    # The note lands, but the reply is late: the worker dies between POST and recording it.
    fake_servicedesk.add_fault(f"POST notes {ticket}", Fault(after=True, delay=10))
    job_id = stack.post_webhook(client, tenant_b, ticket).json()["job_id"]
    wait_until(
        lambda: len(fake_servicedesk.notes_for(tenant_b.instance, ticket)) == 1, 30, what="note posted"
    )
    assert stack.job(job_id)["note_state"] == "posting"

    worker.kill()
    worker.start()
    worker.wait_ready()

    job = stack.wait_for_job(job_id, timeout=60)
    assert job["status"] == "succeeded", job["error"]
    notes = fake_servicedesk.notes_for(tenant_b.instance, ticket)
    assert len(notes) == 1
    assert job["note_id"] == notes[0]["id"]
    assert job["attempts"] == 2


def _orphaned_job(stack: Stack, tenant: TenantFixture, ticket: str, attempts: int) -> str:
    """The row a worker leaves when it dies mid-attempt (segfault, OOM kill): `running`, its lease
    expired. The sweeper re-sends it to the live worker (SWEEPER_STALE_AFTER_SECONDS=3 in the test env)."""
    job_id = str(uuid.uuid4())
    with stack.owner.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO enhancement_jobs (id, tenant_id, ticket_id, dedupe_key, body_sha256, status,"
                " attempts, note_key, note_state, lease_until, enqueued_at)"
                " VALUES (:id, :tenant, :ticket, :ticket, :sha, 'running', :attempts, :note_key, 'none',"
                " now() - interval '1 second', now() - interval '1 minute')"
            ),
            {
                "id": job_id,
                "tenant": tenant.id,
                "ticket": ticket,
                "sha": uuid.uuid4().hex * 2,
                "attempts": attempts,
                "note_key": str(uuid.uuid4()),
            },
        )
    return job_id


@pytest.mark.parametrize(("attempts_before", "runs"), [(3, True), (4, False)])
def test_a_job_is_not_claimed_beyond_its_maximum_attempts(
    stack: Stack,
    fleet: WorkerFleet,
    tenant_a: TenantFixture,
    fake_llm: FakeLLM,
    fake_servicedesk: FakeServiceDesk,
    attempts_before: int,
    runs: bool,
) -> None:
    # TASK_MAX_RETRIES=3 in the test env: at most 4 attempts. A job whose attempts kill their worker
    # never reaches the retry bound inside an attempt, so the claim itself must stop it.
    assert stack.env["TASK_MAX_RETRIES"] == "3"
    fleet.start()
    ticket = stack.new_ticket(tenant_a)
    job_id = _orphaned_job(stack, tenant_a, ticket, attempts_before)

    job = stack.wait_for_job(job_id, timeout=30)

    notes = fake_servicedesk.notes_for(tenant_a.instance, ticket)
    fetched = [r for r in fake_servicedesk.requests if ticket in r["path"]]
    prompted = [c for c in fake_llm.completions if ticket in json.dumps(c["messages"])]
    if runs:  # the 4th attempt is still allowed
        assert job["status"] == "succeeded", job["error"]
        assert job["attempts"] == 4
        assert len(notes) == 1
        return
    assert job["status"] == "failed"
    assert job["error"] == "gave up after 4 attempts: the last one never finished (its worker was lost)"
    assert job["attempts"] == 4  # a refused claim is not an attempt
    assert job["lease_until"] is None
    assert job["finished_at"] is not None
    assert (fetched, prompted, notes) == ([], [], [])
