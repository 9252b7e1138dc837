"""One tenant's slow or huge upstream answers must not stall the other tenants' jobs.

Tenant A's ServiceDesk Plus trickles its answers (one byte every 2 s, so no read ever waits long enough
for a read timeout) or sends 50 MB; one of A's tickets also gets a 50 MB LLM answer. Meanwhile every one
of tenant B's jobs must succeed within a stated bound, A may never hold more than its share of the
worker's threads, and A's jobs end `failed` with a reason naming the deadline or the cap, without a note
and without attempts spent on waiting for a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.faults import FINISHED, WorkerFleet, job_rows
from harness.http_fake import PAD, Fault
from harness.processes import WorkerProcess
from harness.stack import Stack, TenantFixture

pytestmark = pytest.mark.slow

CONCURRENCY = 4
TENANT_SHARE = CONCURRENCY // 2  # the default TENANT_MAX_CONCURRENCY
JOB_DEADLINE = 5
TASK_MAX_RETRIES = 1  # 2 attempts
ENV = {
    "WORKER_CONCURRENCY": str(CONCURRENCY),
    "JOB_DEADLINE_SECONDS": str(JOB_DEADLINE),
    "TASK_MAX_RETRIES": str(TASK_MAX_RETRIES),
    "TASK_RETRY_BACKOFF_MAX_SECONDS": "1",
    "SDP_TIMEOUT_SECONDS": "5",  # per read: each trickled byte arrives well within it
}
TRICKLE = 2.0  # seconds between bytes
HUGE = 50 * 1024 * 1024
A_JOBS = CONCURRENCY  # as many as the worker has threads: unchecked, A alone fills the pool
B_JOBS = 12
B_BOUND = 15.0  # seconds from B's first webhook until every B job has succeeded
A_BOUND = 90.0  # seconds until every A job has ended
FOREVER = 50  # more scripted answers than any bounded retry policy consumes


@dataclass
class Watch:
    b_done_after: float | None = None  # seconds after B's first webhook
    a_done_after: float | None = None
    most_a_running: int = 0  # the most A jobs seen `running` at once
    rows: dict[str, dict[str, object]] = field(default_factory=dict)


def _post(stack: Stack, client: httpx.Client, tenant: TenantFixture, ticket: str) -> str:
    response = stack.post_webhook(client, tenant, ticket)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def _watch(stack: Stack, a_ids: list[str], b_ids: list[str], started: float) -> Watch:
    """Poll the jobs until A's and B's are all finished, giving up on B at B_BOUND (the test has then
    failed: no need to wait for A) and on A at A_BOUND."""
    watch = Watch()
    while True:
        watch.rows = job_rows(stack, a_ids + b_ids)
        elapsed = time.monotonic() - started
        a_running = sum(1 for job in a_ids if watch.rows[job]["status"] == "running")
        watch.most_a_running = max(watch.most_a_running, a_running)
        if watch.b_done_after is None and all(watch.rows[job]["status"] in FINISHED for job in b_ids):
            watch.b_done_after = elapsed
        if watch.a_done_after is None and all(watch.rows[job]["status"] in FINISHED for job in a_ids):
            watch.a_done_after = elapsed
        if watch.b_done_after is None and elapsed > B_BOUND:
            return watch
        if (watch.a_done_after is not None and watch.b_done_after is not None) or elapsed > A_BOUND:
            return watch
        time.sleep(0.2)


def _problems_of_b(
    watch: Watch, b_jobs: dict[str, str], tenant: TenantFixture, fake_servicedesk: FakeServiceDesk
) -> list[str]:
    problems = []
    if watch.b_done_after is None or watch.b_done_after > B_BOUND:
        done = sum(1 for job in b_jobs if watch.rows[job]["status"] == "succeeded")
        problems.append(f"tenant B: {done}/{len(b_jobs)} jobs succeeded within {B_BOUND:g} s")
    for job, ticket in b_jobs.items():
        row = watch.rows[job]
        if row["status"] in FINISHED and row["status"] != "succeeded":
            problems.append(f"tenant B job {job}: {row['status']} ({row['error']})")
        elif row["status"] == "succeeded" and len(fake_servicedesk.notes_for(tenant.instance, ticket)) != 1:
            problems.append(f"tenant B ticket {ticket}: not exactly one note")
    return problems


def _problems_of_a(
    watch: Watch,
    a_jobs: dict[str, str],
    reason: str,
    attempts: int,
    tenant: TenantFixture,
    sdp: FakeServiceDesk,
) -> list[str]:
    problems = []
    if watch.most_a_running > TENANT_SHARE:
        problems.append(f"tenant A: {watch.most_a_running} jobs running at once, share is {TENANT_SHARE}")
    for job, ticket in a_jobs.items():
        row = watch.rows[job]
        error = str(row["error"] or "")
        if row["status"] != "failed" or reason not in error:
            problems.append(f"tenant A job: {row['status']} after {row['attempts']} attempts ({error!r}), "
                            f"expected failed with {reason!r}")  # fmt: skip
        elif row["attempts"] != attempts:
            problems.append(f"tenant A job: {row['attempts']} attempts, expected {attempts}")
        if sdp.notes_for(tenant.instance, ticket):
            problems.append(f"tenant A ticket {ticket}: a note was posted")
    return problems


def _deferred(worker: WorkerProcess) -> float:
    for line in worker.metrics().splitlines():
        if line.startswith('ai_agents_enhancements_total{outcome="deferred"}'):
            return float(line.split()[-1])
    return 0.0


def _peak_rss_mb(worker: WorkerProcess) -> float | None:
    """The worker's peak resident memory (Linux), to show what a 50 MB answer cost it."""
    assert worker.process is not None
    status = Path(f"/proc/{worker.process.pid}/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def test_a_trickling_servicedesk_holds_its_share_of_threads_only(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
    fake_servicedesk: FakeServiceDesk,
    fleet: WorkerFleet,
    record: Callable[..., None],
) -> None:
    worker = fleet.start(**ENV)
    a_tickets = [stack.new_ticket(tenant_a) for _ in range(A_JOBS)]
    b_tickets = [stack.new_ticket(tenant_b) for _ in range(B_JOBS)]
    try:
        for ticket in a_tickets:
            # The real ticket, one byte at a time: status line, headers and body.
            fake_servicedesk.add_fault(f"GET request {ticket}", Fault(after=True, trickle=TRICKLE), FOREVER)
        a_jobs = {_post(stack, client, tenant_a, ticket): ticket for ticket in a_tickets}
        time.sleep(1.0)  # A's jobs take the threads first
        started = time.monotonic()
        b_jobs = {_post(stack, client, tenant_b, ticket): ticket for ticket in b_tickets}
        watch = _watch(stack, list(a_jobs), list(b_jobs), started)
        deferred = _deferred(worker)
    finally:
        for ticket in a_tickets:
            fake_servicedesk.clear_faults(f"GET request {ticket}")

    attempts = TASK_MAX_RETRIES + 1
    problems = _problems_of_b(watch, b_jobs, tenant_b, fake_servicedesk)
    problems += _problems_of_a(watch, a_jobs, "job deadline", attempts, tenant_a, fake_servicedesk)
    record(
        b_jobs=B_JOBS,
        b_all_succeeded_after_s=None if watch.b_done_after is None else round(watch.b_done_after, 1),
        a_jobs=A_JOBS,
        a_all_ended_after_s=None if watch.a_done_after is None else round(watch.a_done_after, 1),
        a_most_running_at_once=watch.most_a_running,
        a_deferrals=deferred,
        a_errors=sorted({str(watch.rows[job]["error"]) for job in a_jobs}),
        a_attempts=sorted(int(str(watch.rows[job]["attempts"])) for job in a_jobs),
    )
    assert not problems, "\n".join(problems)


def test_a_huge_answer_is_cut_at_the_cap(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
    fake_servicedesk: FakeServiceDesk,
    fake_llm: FakeLLM,
    fleet: WorkerFleet,
    record: Callable[..., None],
) -> None:
    worker = fleet.start(**ENV)
    sdp_tickets = [stack.new_ticket(tenant_a) for _ in range(A_JOBS - 1)]
    llm_ticket = stack.new_ticket(tenant_a)
    b_tickets = [stack.new_ticket(tenant_b) for _ in range(B_JOBS)]
    completion = {
        "id": "chatcmpl-huge",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": PAD}, "finish_reason": "stop"}],
    }
    try:
        for ticket in sdp_tickets:
            # A well-formed ticket whose description is 50 MB.
            ticket_body = {"request": {"id": ticket, "subject": "VPN down", "description": PAD}}
            fake_servicedesk.add_fault(
                f"GET request {ticket}", Fault(200, {}, ticket_body, huge=HUGE), FOREVER
            )
        fake_llm.add_fault(llm_ticket, Fault(200, {}, completion, huge=HUGE), FOREVER)
        a_jobs = {_post(stack, client, tenant_a, ticket): ticket for ticket in [*sdp_tickets, llm_ticket]}
        started = time.monotonic()
        b_jobs = {_post(stack, client, tenant_b, ticket): ticket for ticket in b_tickets}
        watch = _watch(stack, list(a_jobs), list(b_jobs), started)
        peak_rss = _peak_rss_mb(worker)
    finally:
        for ticket in sdp_tickets:
            fake_servicedesk.clear_faults(f"GET request {ticket}")
        fake_llm.clear_faults(llm_ticket)

    problems = _problems_of_b(watch, b_jobs, tenant_b, fake_servicedesk)
    # A cap is not retried: the same answer would come back.
    problems += _problems_of_a(watch, a_jobs, "-byte cap", 1, tenant_a, fake_servicedesk)
    record(
        b_jobs=B_JOBS,
        b_all_succeeded_after_s=None if watch.b_done_after is None else round(watch.b_done_after, 1),
        a_jobs=len(a_jobs),
        a_all_ended_after_s=None if watch.a_done_after is None else round(watch.a_done_after, 1),
        a_errors=sorted({str(watch.rows[job]["error"]) for job in a_jobs}),
        worker_peak_rss_mb=peak_rss,
    )
    assert not problems, "\n".join(problems)
