"""Faults 1 and 2: the worker is SIGKILLed mid-task (≥ 20 times) or SIGTERMed; no job is lost or doubled.

Recovery after a SIGKILL (threads pool: the whole process dies with every task it held) comes from two
independent paths: the broker re-delivers the unacked message after BROKER_VISIBILITY_TIMEOUT_SECONDS
(acks_late), and the sweeper re-sends a `running` job whose lease (TASK_TIME_LIMIT_SECONDS + 5 s)
expired. Whichever comes first wins the `claim`; the other delivery is skipped.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.faults import SendLog, WorkerFleet, job_rows, send_new_ticket, wait_all_finished
from harness.http_fake import Fault
from harness.net import wait_until
from harness.stack import Stack, TenantFixture

pytestmark = pytest.mark.slow

# The smallest limits the settings accept (time limit ≥ 10 s, visibility timeout ≥ 30 s): lease 15 s.
FAST_RECOVERY = {
    "TASK_SOFT_TIME_LIMIT_SECONDS": "8",
    "TASK_TIME_LIMIT_SECONDS": "10",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "30",
    "SWEEPER_INTERVAL_SECONDS": "1",
    "SWEEPER_STALE_AFTER_SECONDS": "3",
    "WORKER_CONCURRENCY": "4",
    # A job can be hit by several of the kills below; each kill costs it an attempt, and the claim gives
    # a job up after TASK_MAX_RETRIES + 1 attempts. This test is about losing and doubling nothing.
    "TASK_MAX_RETRIES": "10",
}
KILLS = 20
LLM_DELAY = 0.6  # seconds each LLM reply takes, so that a kill lands mid-task
NOTE_DELAY = 0.3  # the note lands, then the reply is late: kills also land between POST and bookkeeping


def _slow_upstreams(fake_llm: FakeLLM, fake_servicedesk: FakeServiceDesk, ticket: str) -> None:
    fake_llm.add_fault(ticket, Fault(after=True, delay=LLM_DELAY), times=3)
    fake_servicedesk.add_fault(f"POST notes {ticket}", Fault(after=True, delay=NOTE_DELAY), times=3)


def _running(stack: Stack, job_ids: list[str], claimed_since: float = 0.0) -> list[str]:
    """Jobs running under a live lease, claimed at or after `claimed_since` (unix time)."""
    with stack.owner.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id FROM enhancement_jobs WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'running'"
                " AND lease_until > now() AND updated_at >= to_timestamp(:since)"
            ),
            {"ids": job_ids, "since": claimed_since},
        )
        return [str(row[0]) for row in rows]


def _queued(stack: Stack, job_ids: list[str]) -> int:
    return sum(1 for row in job_rows(stack, job_ids).values() if row["status"] == "queued")


def _assert_one_note_each(
    stack: Stack, fake_servicedesk: FakeServiceDesk, log: SendLog, rows: dict[str, dict[str, Any]]
) -> None:
    for delivery in log.deliveries:
        assert delivery.job_id is not None
        job = rows[delivery.job_id]
        assert job["status"] == "succeeded", (delivery.ticket_id, job["status"], job["error"])
        notes = fake_servicedesk.notes_for(delivery.tenant.instance, delivery.ticket_id)
        assert len(notes) == 1, (delivery.ticket_id, len(notes))
        assert f"ai-agents ref {job['note_key']}" in notes[0]["description"]
        assert job["note_id"] == notes[0]["id"]


def test_sigkill_mid_task_repeatedly_loses_and_doubles_nothing(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
    fake_llm: FakeLLM,
    fake_servicedesk: FakeServiceDesk,
    fleet: WorkerFleet,
    record: Callable[..., None],
) -> None:
    log = SendLog()
    tenants = [tenant_a, tenant_b]

    def submit(n: int) -> None:
        for i in range(n):
            tenant = tenants[(len(log.deliveries) + i) % 2]
            delivery = send_new_ticket(stack, client, tenant, log)
            assert delivery is not None and delivery.status == 202, log.errors[-1:]
            _slow_upstreams(fake_llm, fake_servicedesk, delivery.ticket_id)

    started = time.monotonic()
    worker = fleet.start(**FAST_RECOVERY)
    killed_at: dict[str, float] = {}  # job id -> time of the last kill that interrupted it
    hit_per_kill: list[int] = []
    restart_seconds: list[float] = []
    incarnation = time.time()
    kill = 0
    # Until KILLS kills hit a running task (bounded: a kill can miss when the task just finished).
    while sum(1 for hit in hit_per_kill if hit) < KILLS and kill < 2 * KILLS:
        kill += 1
        if _queued(stack, log.job_ids()) < 4:  # keep a run of jobs flowing through the kills
            submit(6)
        # Mid-task of *this* incarnation: a job it claimed and is still working on.
        wait_until(
            lambda since=incarnation: bool(_running(stack, log.job_ids(), since)),
            60,
            interval=0.05,
            what="a task running",
        )
        time.sleep((kill % 5) * 0.1)  # spread the kills over LLM call, note POST and bookkeeping
        in_flight = _running(stack, log.job_ids(), incarnation)
        worker.kill()
        now = time.time()
        for job_id in in_flight:
            killed_at[job_id] = now
        hit_per_kill.append(len(in_flight))
        worker.start()
        worker.wait_ready(60)
        restart_seconds.append(time.time() - now)
        incarnation = time.time()

    rows = wait_all_finished(stack, log.job_ids(), timeout=120)
    total = time.monotonic() - started
    _assert_one_note_each(stack, fake_servicedesk, log, rows)
    assert fake_servicedesk.violations == []
    assert sum(1 for hit in hit_per_kill if hit) >= KILLS

    recovery = [rows[job_id]["finished_at"].timestamp() - killed_at[job_id] for job_id in killed_at]
    attempts = [row["attempts"] for row in rows.values()]
    record(
        kills=len(hit_per_kill),
        kills_mid_task=sum(1 for hit in hit_per_kill if hit),
        jobs=len(rows),
        interrupted_jobs=len(killed_at),
        tasks_in_flight_per_kill_mean=round(statistics.mean(hit_per_kill), 2),
        worker_restart_to_ready_s_median=round(statistics.median(restart_seconds), 2),
        recovery_kill_to_succeeded_s_median=round(statistics.median(recovery), 1),
        recovery_kill_to_succeeded_s_max=round(max(recovery), 1),
        max_attempts=max(attempts),
        notes_per_ticket=1,
        wall_s=round(total, 1),
    )


def test_sigterm_during_a_task_finishes_it(
    stack: Stack,
    client: httpx.Client,
    tenant_a: TenantFixture,
    fake_llm: FakeLLM,
    fake_servicedesk: FakeServiceDesk,
    fleet: WorkerFleet,
    record: Callable[..., None],
) -> None:
    """Warm shutdown: the worker stops consuming, lets the running task finish, then exits 0."""
    worker = fleet.start(**FAST_RECOVERY)
    log = SendLog()
    delivery = send_new_ticket(stack, client, tenant_a, log)
    assert delivery is not None and delivery.job_id is not None
    fake_llm.add_fault(delivery.ticket_id, Fault(after=True, delay=3.0))
    wait_until(lambda: bool(_running(stack, [str(delivery.job_id)])), 30, interval=0.05, what="task running")
    assert worker.process is not None
    sent = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    code = worker.process.wait(30)
    exit_seconds = time.monotonic() - sent
    job = stack.job(delivery.job_id)
    assert code == 0
    assert job["status"] == "succeeded", job  # finished before the process exited
    assert len(fake_servicedesk.notes_for(tenant_a.instance, delivery.ticket_id)) == 1
    record(case="sigterm_running_task", exit_code=code, sigterm_to_exit_s=round(exit_seconds, 1))


def test_sigterm_with_a_retry_pending_hands_the_task_back(
    stack: Stack,
    client: httpx.Client,
    tenant_b: TenantFixture,
    fake_llm: FakeLLM,
    fake_servicedesk: FakeServiceDesk,
    fleet: WorkerFleet,
    record: Callable[..., None],
) -> None:
    """A task waiting for its retry countdown (an unacked ETA message) is not lost by a shutdown."""
    env = {**FAST_RECOVERY, "TASK_RETRY_BACKOFF_MAX_SECONDS": "20", "LLM_MAX_RETRIES": "0"}
    worker = fleet.start(**env)
    log = SendLog()
    delivery = send_new_ticket(stack, client, tenant_b, log)
    assert delivery is not None and delivery.job_id is not None
    job_id = delivery.job_id
    # One 429 asking for 15 s: the task schedules its retry ≥ 15 s later and holds the ETA message.
    fake_llm.add_fault(
        delivery.ticket_id, Fault(429, {"Retry-After": "15"}, {"error": {"message": "slow down"}})
    )
    wait_until(
        lambda: stack.job(job_id)["status"] == "queued" and stack.job(job_id)["attempts"] == 1,
        30,
        interval=0.05,
        what="retry scheduled",
    )
    assert worker.stop(30) == 0
    stopped = time.monotonic()
    fleet.start(**env)
    job = stack.wait_for_job(job_id, timeout=90)
    assert job["status"] == "succeeded", job["error"]
    assert len(fake_servicedesk.notes_for(tenant_b.instance, delivery.ticket_id)) == 1
    record(
        case="sigterm_retry_pending",
        attempts=job["attempts"],
        stop_to_succeeded_s=round(time.monotonic() - stopped, 1),
    )
