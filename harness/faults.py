"""Helpers for fault and load suites (tests/reliability, tests/security): worker fleets with their own
settings, bulk job inspection, and webhook senders. Everything talks to 127.0.0.1 only."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text

from harness.processes import WorkerProcess
from harness.stack import Stack, TenantFixture

FINISHED = ("succeeded", "failed")


class WorkerFleet:
    """Worker processes started with the stack's env plus per-test overrides; all stopped at teardown."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.workers: list[WorkerProcess] = []

    def start(self, **overrides: str) -> WorkerProcess:
        worker = WorkerProcess({**self.env, **overrides})
        worker.start()
        worker.wait_ready(60)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.alive():
                worker.stop(30)


def job_rows(stack: Stack, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(job_ids)
    if not ids:
        return {}
    with stack.owner.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM enhancement_jobs WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": ids}
        ).mappings()
        return {str(row["id"]): dict(row) for row in rows}


def status_counts(stack: Stack, job_ids: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in job_rows(stack, job_ids).values():
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def wait_all_finished(
    stack: Stack, job_ids: Iterable[str], timeout: float, interval: float = 0.25
) -> dict[str, dict[str, Any]]:
    """Wait until every job is succeeded or failed; return the rows either way.

    `timeout` bounds a stall, not the whole wait: each job that finishes moves the deadline on. A slower
    machine draining a longer backlog still gets there; a job that can never finish ends the wait
    `timeout` seconds after the last progress (and the test's own time limit caps everything).
    """
    ids = list(job_ids)
    deadline = time.monotonic() + timeout
    finished = -1
    while True:
        rows = job_rows(stack, ids)
        done = sum(1 for row in rows.values() if row["status"] in FINISHED)
        if len(rows) == len(ids) and done == len(ids):
            return rows
        if done > finished:
            finished, deadline = done, time.monotonic() + timeout
        if time.monotonic() >= deadline:
            return rows
        time.sleep(interval)


@dataclass
class Delivery:
    tenant: TenantFixture
    ticket_id: str
    status: int
    job_id: str | None
    seconds: float


@dataclass
class SendLog:
    deliveries: list[Delivery] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def job_ids(self) -> list[str]:
        return [d.job_id for d in self.deliveries if d.job_id]

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for delivery in self.deliveries:
            out[delivery.status] = out.get(delivery.status, 0) + 1
        return out


def send_new_ticket(
    stack: Stack, client: httpx.Client, tenant: TenantFixture, log: SendLog, *, secret: str | None = None
) -> Delivery | None:
    """Create a ticket in the fake ServiceDesk Plus and deliver its signed webhook; record the outcome."""
    ticket = stack.new_ticket(tenant)
    body = stack.payload(ticket)
    started = time.perf_counter()
    try:
        response = client.post(
            "/webhook/servicedesk", content=body, headers=stack.webhook_headers(tenant, body, secret)
        )
    except httpx.HTTPError as error:
        log.errors.append(f"{type(error).__name__}: {error}")
        return None
    job_id = response.json().get("job_id") if response.status_code in (200, 202) else None
    delivery = Delivery(tenant, ticket, response.status_code, job_id, time.perf_counter() - started)
    log.deliveries.append(delivery)
    return delivery


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
