"""The whole service on loopback for the benchmarks, built from the test suite's own pieces (harness/).

Real PostgreSQL, Redis, moto (Secrets Manager), the fake ServiceDesk Plus and fake LLM (with a fixed
service time), migrations and tenants through the real CLI; the API (uvicorn) and the worker (celery) as
subprocesses started exactly as the workloads start them. Everything is torn down on exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import percentile
from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk, Instance
from harness.http_fake import Reply
from harness.moto_server import MotoServer
from harness.postgres import PostgresServer
from harness.processes import ApiProcess, ServiceProcess, WorkerProcess
from harness.redis_server import RedisServer
from harness.stack import LLM_API_KEY, Stack

TENANTS = ("bench-a", "bench-b")

# The settings a deployment runs with (the test suite shortens them to exercise the sweeper and the
# secrets cache; under load that would re-send healthy queued jobs and refetch secrets every second).
BENCH_ENV = {
    "SECRETS_CACHE_TTL_SECONDS": "300",
    "SWEEPER_INTERVAL_SECONDS": "60",
    "SWEEPER_STALE_AFTER_SECONDS": "300",
    "TASK_SOFT_TIME_LIMIT_SECONDS": "50",
    "TASK_TIME_LIMIT_SECONDS": "55",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "300",
    "LOG_LEVEL": "INFO",
}


class TimedServiceDesk(FakeServiceDesk):
    """The fake ServiceDesk Plus, also stamping (on the bench's clock) when a ticket was first asked
    for, before the fake latency, and when each note landed, after it."""

    def __init__(self) -> None:
        super().__init__()
        self.first_get_at: dict[str, float] = {}
        self.posted_at: dict[str, float] = {}
        self.notes_posted = 0
        self._posted_lock = threading.Lock()

    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method == "GET" and "/notes" not in path:
            arrived = time.monotonic()
            ticket = path.split("?", 1)[0].rsplit("/", 1)[-1]
            with self._posted_lock:
                self.first_get_at.setdefault(ticket, arrived)
        return super().dispatch(method, path, headers, body)

    def _add_note(self, instance: Instance, ticket_id: str, headers: dict[str, str], body: bytes) -> Reply:
        reply = super()._add_note(instance, ticket_id, headers, body)
        if reply.status == 201:
            with self._posted_lock:
                self.posted_at.setdefault(ticket_id, time.monotonic())
                self.notes_posted += 1
        return reply


@dataclass
class BenchStack:
    stack: Stack
    servicedesk: TimedServiceDesk
    llm: FakeLLM
    processes: list[ServiceProcess] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return self.stack.env

    def api(self, extra_env: dict[str, str] | None = None) -> ApiProcess:
        process = ApiProcess({**self.env, **(extra_env or {})})
        self.processes.append(process)
        process.start_ready()
        return process

    def worker(self, concurrency: int) -> WorkerProcess:
        process = WorkerProcess({**self.env, "WORKER_CONCURRENCY": str(concurrency)})
        self.processes.append(process)
        process.start()
        process.wait_ready(60)
        return process

    def add_tickets(self, ticket_ids: list[tuple[str, str]]) -> None:
        for tenant_id, ticket_id in ticket_ids:
            self.servicedesk.add_ticket(tenant_id, ticket_id, "VPN down", "Since 9am nobody reaches the VPN.")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def service_stack(*, llm_latency: float = 0.0, sdp_latency: float = 0.0) -> Iterator[BenchStack]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    # A timeout's SIGTERM must still run the clean-up below (servers, subprocesses, temp dirs).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    postgres = PostgresServer()
    redis = RedisServer()
    moto = MotoServer()
    servicedesk = TimedServiceDesk()
    llm = FakeLLM(LLM_API_KEY)
    for fake, latency in ((servicedesk, sdp_latency), (llm, llm_latency)):
        fake.latency = latency
        fake.record_requests = False
    bench: BenchStack | None = None
    with contextlib.ExitStack() as cleanup:
        # Registered before starting: a half-started server is stopped and its temp dir removed too.
        cleanup.callback(postgres.destroy)
        postgres.start()
        cleanup.callback(redis.destroy)
        redis.start()
        moto.start()
        cleanup.callback(moto.stop)
        servicedesk.start()
        cleanup.callback(servicedesk.stop)
        llm.start()
        cleanup.callback(llm.stop)
        stack = Stack.create(postgres, redis, moto, servicedesk, llm, database="ai_agents_bench")
        stack.env.update(BENCH_ENV)
        cleanup.callback(stack.close)
        stack.migrate()
        # Each `tenants add` is a CLI process (a few seconds of imports): run them side by side.
        with ThreadPoolExecutor(len(TENANTS)) as pool:
            list(pool.map(lambda tenant_id: stack.add_tenant(tenant_id, "authtoken"), TENANTS))
        bench = BenchStack(stack, servicedesk, llm)

        def stop_processes() -> None:
            assert bench is not None

            def stop(process: ServiceProcess) -> None:
                process.stop()
                process.log_path.unlink(missing_ok=True)

            with ThreadPoolExecutor(max(1, len(bench.processes))) as pool:
                list(pool.map(stop, bench.processes))

        cleanup.callback(stop_processes)
        yield bench


def latency_summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_s": percentile(samples, 50),
        "p95_s": percentile(samples, 95),
        "p99_s": percentile(samples, 99),
        "max_s": max(samples),
        "n": len(samples),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"{tool} not found: install it (apt-get install {tool})")
    return path
