"""Fault 5: the LLM and ServiceDesk Plus keep failing. Retries are bounded, the job ends `failed` with
the reason, and no note (let alone half a note) reaches the ticket. A 401 is never retried.

All cases run at once against one worker, so the suite waits for the slowest case only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.faults import WorkerFleet, wait_all_finished
from harness.http_fake import Fault
from harness.stack import Stack, TenantFixture

pytestmark = pytest.mark.slow

TASK_MAX_RETRIES = 2  # 3 attempts
LLM_MAX_RETRIES = 1  # 2 calls per attempt
SDP_MAX_ATTEMPTS = 2  # 2 calls per attempt and operation (only when safe to repeat)
ENV = {
    "TASK_MAX_RETRIES": str(TASK_MAX_RETRIES),
    "TASK_RETRY_BACKOFF_MAX_SECONDS": "2",
    "LLM_MAX_RETRIES": str(LLM_MAX_RETRIES),
    "LLM_TIMEOUT_SECONDS": "1",
    "SDP_MAX_ATTEMPTS": str(SDP_MAX_ATTEMPTS),
    "SDP_RETRY_MAX_WAIT_SECONDS": "1",
    "SDP_TIMEOUT_SECONDS": "1",
    "WORKER_CONCURRENCY": "8",
}
ATTEMPTS = TASK_MAX_RETRIES + 1
FOREVER = 50  # more scripted failures than any bounded retry policy consumes
GARBAGE = b"<html><body>502 Bad Gateway</body></html>"


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # llm | get | post
    fault: Fault
    reason: str  # substring of the job's error
    max_calls: int  # bound on requests to the failing endpoint
    min_calls: int = 1


CASES = [
    Case("llm 429 + Retry-After", "llm", Fault(429, {"Retry-After": "1"}, {"error": {"message": "rate"}}),
         "llm answered 429", ATTEMPTS * (LLM_MAX_RETRIES + 1), ATTEMPTS),
    Case("llm 500", "llm", Fault(500, {}, {"error": {"message": "boom"}}),
         "llm answered 500", ATTEMPTS * (LLM_MAX_RETRIES + 1), ATTEMPTS),
    Case("llm timeout", "llm", Fault(200, {}, {}, delay=3.0),
         "llm unreachable: APITimeoutError", ATTEMPTS * (LLM_MAX_RETRIES + 1), ATTEMPTS),
    Case("llm html garbage", "llm", Fault(200, {"Content-Type": "text/html"}, GARBAGE),
         "llm", ATTEMPTS * (LLM_MAX_RETRIES + 1)),
    Case("llm json garbage", "llm", Fault(200, {}, {"unexpected": True}),
         "llm", ATTEMPTS * (LLM_MAX_RETRIES + 1)),
    Case("sdp get 503", "get", Fault(503, {}, {"response_status": {"status_code": 5000}}),
         "servicedesk answered 503", ATTEMPTS * SDP_MAX_ATTEMPTS, ATTEMPTS),
    Case("sdp get 401", "get", Fault(401, {}, {"response_status": {"status_code": 4001}}),
         "servicedesk answered 401", 1),
    Case("sdp get timeout", "get", Fault(200, {}, {}, delay=3.0),
         "servicedesk timed out", ATTEMPTS * SDP_MAX_ATTEMPTS, ATTEMPTS),
    Case("sdp get html garbage", "get", Fault(200, {"Content-Type": "text/html"}, GARBAGE),
         "non-JSON", 1),
    Case("sdp post 500", "post", Fault(500, {}, {"response_status": {"status_code": 5000}}),
         "servicedesk answered 500", ATTEMPTS, ATTEMPTS),
    Case("sdp post 401", "post", Fault(401, {}, {"response_status": {"status_code": 4001}}),
         "servicedesk answered 401", 1),
]  # fmt: skip


def _fault_key(case: Case, ticket: str) -> str:
    return {"llm": ticket, "get": f"GET request {ticket}", "post": f"POST notes {ticket}"}[case.target]


def _calls(case: Case, ticket: str, fake_llm: FakeLLM, fake_servicedesk: FakeServiceDesk) -> int:
    if case.target == "llm":
        return sum(1 for r in fake_llm.requests if ticket.encode() in r["body"])
    method, suffix = ("GET", f"/requests/{ticket}") if case.target == "get" else ("POST", f"/{ticket}/notes")
    return sum(
        1
        for r in fake_servicedesk.requests
        if r["method"] == method and r["path"].split("?")[0].endswith(suffix)
    )


def test_upstream_failures_end_failed_with_reason_and_no_note(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
    fake_llm: FakeLLM,
    fake_servicedesk: FakeServiceDesk,
    fleet: WorkerFleet,
    record: Callable[..., None],
) -> None:
    fleet.start(**ENV)
    tickets: dict[str, tuple[Case, str, TenantFixture]] = {}
    started = time.monotonic()
    for n, case in enumerate(CASES):
        tenant = [tenant_a, tenant_b][n % 2]
        ticket = stack.new_ticket(tenant)
        upstream = fake_llm if case.target == "llm" else fake_servicedesk
        upstream.add_fault(_fault_key(case, ticket), case.fault, times=FOREVER)
        body = stack.payload(ticket)
        response = client.post(
            "/webhook/servicedesk", content=body, headers=stack.webhook_headers(tenant, body)
        )
        assert response.status_code == 202
        tickets[response.json()["job_id"]] = (case, ticket, tenant)
    rows = wait_all_finished(stack, list(tickets), timeout=120)
    elapsed = time.monotonic() - started

    results: dict[str, dict[str, object]] = {}
    problems: list[str] = []
    for job_id, (case, ticket, tenant) in tickets.items():
        job = rows[job_id]
        calls = _calls(case, ticket, fake_llm, fake_servicedesk)
        notes = fake_servicedesk.notes_for(tenant.instance, ticket)
        results[case.name] = {"status": job["status"], "attempts": job["attempts"], "calls": calls,
                              "error": job["error"]}  # fmt: skip
        if job["status"] != "failed":
            problems.append(f"{case.name}: status {job['status']} ({job['error']})")
        elif case.reason not in (job["error"] or ""):
            problems.append(f"{case.name}: reason {job['error']!r} lacks {case.reason!r}")
        if not case.min_calls <= calls <= case.max_calls:
            problems.append(f"{case.name}: {calls} calls, expected {case.min_calls}..{case.max_calls}")
        if job["attempts"] > ATTEMPTS:
            problems.append(f"{case.name}: {job['attempts']} attempts > {ATTEMPTS}")
        if notes:
            problems.append(f"{case.name}: {len(notes)} notes posted")
    record(cases=results, wall_s=round(elapsed, 1))
    assert problems == []
