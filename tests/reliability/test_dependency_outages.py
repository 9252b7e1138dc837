"""Faults 3 and 4: Redis down for 30 s under traffic; PostgreSQL connections killed and PostgreSQL stopped.

The API and the worker are never restarted: they must come back by themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import httpx
import pytest

from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.faults import SendLog, WorkerFleet, percentile, send_new_ticket, wait_all_finished
from harness.http_fake import Fault
from harness.net import wait_until
from harness.postgres import PostgresServer
from harness.processes import ApiProcess
from harness.redis_server import RedisServer
from harness.stack import Stack, TenantFixture

pytestmark = pytest.mark.slow

REDIS_OUTAGE_SECONDS = float(os.environ.get("RELIABILITY_REDIS_OUTAGE_SECONDS", "30"))
WORKER_ENV = {"SWEEPER_INTERVAL_SECONDS": "1", "SWEEPER_STALE_AFTER_SECONDS": "3", "WORKER_CONCURRENCY": "4"}


def _assert_all_succeeded_once(
    stack: Stack, fake_servicedesk: FakeServiceDesk, log: SendLog, timeout: float
) -> float:
    started = time.monotonic()
    rows = wait_all_finished(stack, log.job_ids(), timeout=timeout)
    drained = time.monotonic() - started
    assert len(rows) == len(log.deliveries)
    for delivery in log.deliveries:
        assert delivery.job_id is not None
        job = rows[delivery.job_id]
        assert job["status"] == "succeeded", (delivery.ticket_id, job["status"], job["error"])
        assert len(fake_servicedesk.notes_for(delivery.tenant.instance, delivery.ticket_id)) == 1
    return drained


def test_redis_down_30s_while_webhooks_arrive_loses_nothing(
    stack: Stack,
    api: ApiProcess,
    client: httpx.Client,
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
    redis_server: RedisServer,
    fake_servicedesk: FakeServiceDesk,
    fleet: WorkerFleet,
    record: Callable[..., None],
) -> None:
    worker = fleet.start(**WORKER_ENV)
    log = SendLog()
    redis_server.stop()
    outage_started = time.monotonic()
    not_ready: list[int] = []
    try:
        n = 0
        # Bounded: one webhook every 0.2 s for the outage's duration.
        while time.monotonic() - outage_started < REDIS_OUTAGE_SECONDS:
            send_new_ticket(stack, client, [tenant_a, tenant_b][n % 2], log)
            n += 1
            if n % 25 == 0:
                not_ready.append(client.get("/api/v1/ready").status_code)
                assert client.get("/health").status_code == 200
            time.sleep(0.2)
    finally:
        redis_server.start()
    outage = time.monotonic() - outage_started
    assert log.errors == []
    assert log.statuses() == {202: len(log.deliveries)}, log.statuses()  # all stored, none refused
    assert set(not_ready) == {503}
    drained = _assert_all_succeeded_once(stack, fake_servicedesk, log, timeout=120)
    assert worker.alive()  # reconnected by itself
    latencies = [d.seconds for d in log.deliveries]
    record(
        outage_s=round(outage, 1),
        webhooks_during_outage=len(log.deliveries),
        accepted_202=log.statuses().get(202, 0),
        webhook_p50_ms=round(percentile(latencies, 0.5) * 1000),
        webhook_p99_ms=round(percentile(latencies, 0.99) * 1000),
        redis_back_to_all_succeeded_s=round(drained, 1),
        lost=0,
    )


def test_postgres_connections_terminated_then_stopped(
    stack: Stack,
    api: ApiProcess,
    client: httpx.Client,
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
    postgres: PostgresServer,
    fake_llm: FakeLLM,
    fake_servicedesk: FakeServiceDesk,
    fleet: WorkerFleet,
    record: Callable[..., None],
) -> None:
    worker = fleet.start(**WORKER_ENV)
    assert api.process is not None and worker.process is not None
    pids = (api.process.pid, worker.process.pid)
    log = SendLog()
    for n in range(4):  # warm the pools
        send_new_ticket(stack, client, [tenant_a, tenant_b][n % 2], log)
    _assert_all_succeeded_once(stack, fake_servicedesk, log, timeout=60)

    # 1. Every app connection terminated (failover, pgbouncer restart, idle kill): pre-ping replaces them.
    terminated = stack.terminate_app_connections()
    after_terminate = SendLog()
    for n in range(10):
        send_new_ticket(stack, client, [tenant_a, tenant_b][n % 2], after_terminate)
    assert after_terminate.statuses() == {202: 10}, after_terminate.statuses()

    # 2. PostgreSQL stopped, with a job in the middle of its LLM call.
    slow = send_new_ticket(stack, client, tenant_a, log)
    assert slow is not None and slow.job_id is not None
    fake_llm.add_fault(slow.ticket_id, Fault(after=True, delay=2.0))
    wait_until(lambda: stack.job(str(slow.job_id))["status"] == "running", 30, interval=0.05, what="running")
    stack.owner.dispose()
    postgres.stop()
    stopped = time.monotonic()
    try:
        outage: list[httpx.Response] = []
        ticket = stack.new_ticket(tenant_b)
        body = stack.payload(ticket)
        for _ in range(5):
            outage.append(
                client.post(
                    "/webhook/servicedesk", content=body, headers=stack.webhook_headers(tenant_b, body)
                )
            )
        health = client.get("/health")
        ready = client.get("/api/v1/ready")
        job_read = client.get(
            f"/api/v1/jobs/{slow.job_id}", headers=stack.job_headers(tenant_a, f"/api/v1/jobs/{slow.job_id}")
        )
        time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))  # hold the outage ~10 s
    finally:
        postgres.start()
    restarted = time.monotonic()
    outage_seconds = restarted - stopped

    assert [r.status_code for r in outage] == [503] * 5
    assert all(r.headers.get("Retry-After", "").isdigit() for r in outage)
    assert all(r.json()["detail"].startswith("database unavailable") for r in outage)
    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["status"] == "error"
    assert ready.json()["checks"]["redis"]["status"] == "ok"
    assert job_read.status_code == 503

    # 3. Back without restarting anything: ready again, the refused delivery is accepted on its retry,
    # and the job interrupted by the outage finishes (its lease expires, the sweeper re-sends it).
    wait_until(lambda: client.get("/api/v1/ready").status_code == 200, 60, interval=0.5, what="ready")
    ready_after = time.monotonic() - restarted
    retry = client.post("/webhook/servicedesk", content=body, headers=stack.webhook_headers(tenant_b, body))
    assert retry.status_code == 202
    after = SendLog()
    for n in range(4):
        send_new_ticket(stack, client, [tenant_a, tenant_b][n % 2], after)
    assert after.statuses() == {202: 4}
    log.deliveries += after_terminate.deliveries + after.deliveries
    log.deliveries.append(
        type(slow)(tenant_b, ticket, retry.status_code, retry.json()["job_id"], 0.0)  # the retried one
    )
    drained = _assert_all_succeeded_once(stack, fake_servicedesk, log, timeout=90)
    assert api.process is not None and worker.process is not None
    assert (api.process.pid, worker.process.pid) == pids  # nothing was restarted
    record(
        app_connections_terminated=terminated,
        webhooks_after_terminate_202=after_terminate.statuses().get(202, 0),
        outage_s=round(outage_seconds, 1),
        webhook_during_outage="503 + Retry-After x5",
        webhook_503_latency_ms_max=round(max(r.elapsed.total_seconds() for r in outage) * 1000),
        ready_200_after_restart_s=round(ready_after, 1),
        interrupted_job_attempts=stack.job(str(slow.job_id))["attempts"],
        restart_to_all_succeeded_s=round(drained + ready_after, 1),
    )
