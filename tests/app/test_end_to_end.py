"""A signed webhook becomes exactly one private note on the right ticket of the right tenant."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from harness.fake_llm import DEFAULT_USAGE, FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.http_fake import Fault
from harness.processes import ApiProcess, WorkerProcess
from harness.stack import Stack, TenantFixture

pytestmark = pytest.mark.usefixtures("worker")


@pytest.mark.parametrize("tenant_name", ["tenant-a", "tenant-b"])
def test_signed_webhook_produces_one_note_on_the_right_ticket(
    stack: Stack, client: httpx.Client, fake_servicedesk: FakeServiceDesk, tenant_name: str
) -> None:
    tenant = stack.tenants[tenant_name]
    ticket = stack.new_ticket(tenant, subject="VPN down for the finance team")

    response = stack.post_webhook(client, tenant, ticket)

    assert response.status_code == 202
    job_id = response.json()["job_id"]
    job = stack.wait_for_job(job_id)
    assert job["status"] == "succeeded", job["error"]
    notes = fake_servicedesk.notes_for(tenant.instance, ticket)
    assert len(notes) == 1
    assert "AI triage summary" in notes[0]["description"]
    assert f"ref {job['note_key']}" in notes[0]["description"]
    assert job["note_id"] == notes[0]["id"]
    everywhere = [n for inst in fake_servicedesk.instances.values() for n in inst.notes.get(ticket, [])]
    assert len(everywhere) == 1
    assert fake_servicedesk.violations == []


def _run(stack: Stack, client: httpx.Client, tenant: TenantFixture, ticket: str) -> dict[str, object]:
    response = stack.post_webhook(client, tenant, ticket)
    assert response.status_code == 202
    return stack.wait_for_job(response.json()["job_id"])


def test_prompt_and_history_are_recorded(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture, fake_llm: FakeLLM
) -> None:
    ticket = stack.new_ticket(
        tenant_a, subject="Printer on floor 3 jams", description="<p>Paper <b>jam</b></p>"
    )
    job = _run(stack, client, tenant_a, ticket)
    assert job["status"] == "succeeded"
    prompt = next(c for c in fake_llm.completions if ticket in json.dumps(c["messages"]))
    assert prompt["model"] == "test-model"
    assert "Printer on floor 3 jams" in prompt["messages"][1]["content"]
    assert "Paper jam" in prompt["messages"][1]["content"]  # HTML reduced to text
    with stack.owner.connect() as conn:
        history = conn.execute(
            text("SELECT prompt_version, category, note_id FROM enhancement_history WHERE job_id = :j"),
            {"j": job["id"]},
        ).one()
        snapshot = conn.execute(
            text("SELECT subject FROM ticket_history WHERE job_id = :j"), {"j": job["id"]}
        ).one()
    assert tuple(history) == ("v1", "Network", job["note_id"])
    assert snapshot[0] == "Printer on floor 3 jams"


def _tokens(metrics: str) -> dict[str, float]:
    return {
        sample.labels["kind"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "ai_agents_llm_tokens_total"
    }


def test_llm_tokens_are_counted_from_the_reported_usage(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture, fake_llm: FakeLLM, worker: WorkerProcess
) -> None:
    before = _tokens(worker.metrics())
    assert before.keys() == {"prompt", "completion"}  # both series exist before the first call
    fake_llm.usage = {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375}
    try:
        job = _run(stack, client, tenant_a, stack.new_ticket(tenant_a))
    finally:
        fake_llm.usage = dict(DEFAULT_USAGE)
    assert job["status"] == "succeeded", job["error"]
    after = _tokens(worker.metrics())
    assert after["prompt"] - before["prompt"] == 321
    assert after["completion"] - before["completion"] == 54


def test_rate_limit_with_retry_after_is_honoured(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture, fake_servicedesk: FakeServiceDesk
) -> None:
    ticket = stack.new_ticket(tenant_a)
    fake_servicedesk.add_fault(f"GET request {ticket}", Fault(status=429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    job = _run(stack, client, tenant_a, ticket)
    assert job["status"] == "succeeded"
    assert time.monotonic() - started >= 1.0
    assert len(fake_servicedesk.notes_for(tenant_a.instance, ticket)) == 1


def test_outage_longer_than_client_retries_is_retried_by_the_task(
    stack: Stack, client: httpx.Client, tenant_b: TenantFixture, fake_servicedesk: FakeServiceDesk
) -> None:
    ticket = stack.new_ticket(tenant_b)
    # SDP_MAX_ATTEMPTS=2 in the test env: two 503s exhaust the client, the task retries with backoff.
    fake_servicedesk.add_fault(f"GET request {ticket}", Fault(status=503), times=2)
    job = _run(stack, client, tenant_b, ticket)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2
    assert len(fake_servicedesk.notes_for(tenant_b.instance, ticket)) == 1


def test_llm_server_error_is_retried(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    fake_llm: FakeLLM,
    fake_servicedesk: FakeServiceDesk,
) -> None:
    ticket = stack.new_ticket(tenant_a)
    fake_llm.add_fault(ticket, Fault(status=500, body={"error": {"message": "overloaded"}}))
    job = _run(stack, client, tenant_a, ticket)
    assert job["status"] == "succeeded"
    assert len(fake_servicedesk.notes_for(tenant_a.instance, ticket)) == 1


def test_unknown_ticket_fails_with_reason_and_no_note(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture, fake_servicedesk: FakeServiceDesk
) -> None:
    job = _run(stack, client, tenant_a, "T-does-not-exist")
    assert job["status"] == "failed"
    assert "404" in str(job["error"])
    assert fake_servicedesk.notes_for(tenant_a.instance, "T-does-not-exist") == []


def test_invalid_llm_output_fails_the_job(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    fake_llm: FakeLLM,
    fake_servicedesk: FakeServiceDesk,
) -> None:
    ticket = stack.new_ticket(tenant_a)
    fake_llm.add_fault(ticket, Fault(status=200, body=_completion("this is not json")))
    job = _run(stack, client, tenant_a, ticket)
    assert job["status"] == "failed"
    assert "not the expected JSON" in str(job["error"])
    assert fake_servicedesk.notes_for(tenant_a.instance, ticket) == []


def test_logs_carry_ids_but_no_secrets_or_ticket_bodies(
    stack: Stack, client: httpx.Client, tenant_a: TenantFixture, api: ApiProcess, worker: WorkerProcess
) -> None:
    marker = f"SENSITIVE-{uuid.uuid4().hex}"
    ticket = stack.new_ticket(tenant_a, subject="ok", description=marker)
    body = stack.payload(ticket, description=marker)
    response = client.post(
        "/webhook/servicedesk",
        content=body,
        headers={**stack.webhook_headers(tenant_a, body), "X-Request-ID": "rid-1"},
    )
    assert response.status_code == 202
    stack.wait_for_job(response.json()["job_id"])
    logs = api.logs() + worker.logs()
    assert marker not in logs
    assert tenant_a.webhook_secret not in logs
    assert tenant_a.credential not in logs
    assert stack.env["LLM_API_KEY"] not in logs
    access = [json.loads(line) for line in api.logs().splitlines() if '"rid-1"' in line]
    # One line per delivery: the access line names the job it created.
    [line] = [e for e in access if e["event"] == "request"]
    assert (line["tenant_id"], line["status"]) == ("tenant-a", 202)
    assert (line["job_id"], line["ticket_id"]) == (response.json()["job_id"], ticket)
    assert line["webhook_outcome"] == "accepted"


def _completion(content: str) -> dict[str, object]:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
    }
