"""Faults with real processes: broker outage (sweeper) and a worker killed mid-post (no second note)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.fake_servicedesk import FakeServiceDesk
from tests.support.http_fake import Fault
from tests.support.net import wait_until
from tests.support.processes import WorkerProcess
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, TenantFixture

pytestmark = pytest.mark.slow


def test_broker_outage_loses_no_job(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    redis_server: RedisServer,
    worker: WorkerProcess,
    fake_servicedesk: FakeServiceDesk,
) -> None:
    ticket = stack.new_ticket(tenant_a)
    redis_server.stop()
    try:
        response = stack.post_webhook(client, tenant_a, ticket)
        assert response.status_code == 202  # stored; the publish failed and was not fatal
        job_id = response.json()["job_id"]
        assert stack.job(job_id)["status"] == "queued"
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["status"] == "error"
    finally:
        redis_server.start()
    # The sweeper (in the worker) re-sends the stale job once the broker is back.
    job = stack.wait_for_job(job_id, timeout=60)
    assert job["status"] == "succeeded", job["error"]
    assert len(fake_servicedesk.notes_for(tenant_a.instance, ticket)) == 1
    assert "ai_agents_sweeper_requeued_total" in worker.metrics()


def test_worker_killed_after_posting_does_not_post_twice(
    stack: Stack,
    client: httpx.Client,
    tenant_b: TenantFixture,
    worker: WorkerProcess,
    fake_servicedesk: FakeServiceDesk,
) -> None:
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
