"""A rolling release with an expand migration, then a rollback, with real API and worker processes.

Release N is this source tree; release N+1 is a copy of it with one more migration (an expand step:
a nullable column). The test plays what a Deployment with `maxUnavailable: 0` and a surge does, one
pod per release: N serves a steady stream of signed webhooks; N+1's migrations Job runs; N+1's API
and worker start and become Ready; N leaves the Service's endpoints, then gets SIGTERM (the preStop
pause is what lets the endpoints update first: here the router drains N before the signal). Then
the same backwards: N's migrations Job meets the newer database and leaves it alone, N starts
against it and becomes Ready, N+1 leaves and stops.

Throughout: every webhook is accepted (202), there is always at least one Ready API process in the
rotation, and every job ends `succeeded` with exactly one note. With readiness demanding the exact
head, N turns NotReady the moment N+1's migration lands and the rotation is empty.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.db.migrate import head_revision
from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.moto_server import MotoServer
from harness.net import wait_until
from harness.postgres import PostgresServer
from harness.processes import REPO, ApiProcess, ServiceProcess, WorkerProcess, base_env, run_cli
from harness.redis_server import RedisServer
from harness.stack import Stack, TenantFixture

pytestmark = pytest.mark.slow

EXPAND_REVISION = "rolling_expand"
EXPAND_MIGRATION = '''"""Test-only expand step of release N+1: a nullable column the previous release never reads."""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None
compatible_with_previous = True


def upgrade() -> None:
    op.add_column("enhancement_jobs", sa.Column("release_marker", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("enhancement_jobs", "release_marker")
'''
SEND_INTERVAL = 0.2  # the stream's pace: ~5 webhooks a second
PHASE_DEADLINE = 60.0


@dataclass
class Router:
    """The Service in front of the API pods: routes only to processes in its endpoints that passed
    their last readiness probe, probes them continuously, and drains one before it is stopped."""

    stack: Stack
    tenant: TenantFixture
    endpoints: dict[str, ApiProcess] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)
    served: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> ticket id
    failures: list[str] = field(default_factory=list)
    empty_rotation: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for target in (self._probe_loop, self._send_loop):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def add(self, name: str, api: ApiProcess) -> None:
        """Into the endpoints once its readiness probe passes (as the endpoints controller does)."""
        assert probe(api), f"{name} is not Ready: {readiness(api)}"
        with self.lock:
            self.endpoints[name] = api
            self.ready.add(name)

    def drain(self, name: str) -> None:
        """Out of the endpoints; returns once no request to it is in flight (the lock is held while
        a request is sent)."""
        with self.lock:
            self.endpoints.pop(name)
            self.ready.discard(name)

    def total(self) -> int:
        with self.lock:
            return sum(self.served.values())

    def _probe_loop(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                targets = dict(self.endpoints)
            results = {name: probe(api) for name, api in targets.items()}
            with self.lock:
                for name, ok in results.items():
                    if name in self.endpoints:
                        (self.ready.add if ok else self.ready.discard)(name)
                if self.endpoints and not self.ready:
                    self.empty_rotation.append(f"{time.monotonic():.1f}: none of {sorted(targets)} Ready")
            self.stop.wait(0.2)  # the probe period

    def _send_loop(self) -> None:
        turn = 0
        while not self.stop.is_set():
            ticket = self.stack.new_ticket(self.tenant)
            with self.lock:
                candidates = sorted(self.ready)
                if not candidates:
                    self.failures.append(f"{ticket}: refused, no Ready API process")
                else:
                    turn += 1
                    name = candidates[turn % len(candidates)]
                    self._send(name, self.endpoints[name], ticket)
            self.stop.wait(SEND_INTERVAL)

    def _send(self, name: str, api: ApiProcess, ticket: str) -> None:
        try:
            with httpx.Client(base_url=api.url, timeout=15) as client:
                response = self.stack.post_webhook(client, self.tenant, ticket)
        except httpx.HTTPError as error:
            self.failures.append(f"{ticket} via {name}: {type(error).__name__}: {error}")
            return
        if response.status_code != 202:
            self.failures.append(f"{ticket} via {name}: {response.status_code} {response.text[:200]}")
            return
        self.jobs[response.json()["job_id"]] = ticket
        self.served[name] = self.served.get(name, 0) + 1


def assert_stops_gracefully(api: ApiProcess) -> None:
    """SIGTERM, then uvicorn's graceful shutdown to the end (it re-raises the signal once done)."""
    code = api.stop()
    assert code in {0, -signal.SIGTERM}, api.logs()[-2000:]
    assert "Finished server process" in api.current_logs(), api.logs()[-2000:]


def readiness(api: ApiProcess) -> str:
    try:
        response = httpx.get(f"{api.url}/api/v1/ready", timeout=10)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}"
    return f"{response.status_code} {response.text}"


def probe(api: ApiProcess) -> bool:
    return readiness(api).startswith("200 ")


def release_n_plus_1(directory: Path) -> Path:
    """This source tree's app package plus the expand migration: what the next image would hold."""
    shutil.copytree(REPO / "app", directory / "app", ignore=shutil.ignore_patterns("__pycache__"))
    migration = directory / "app" / "db" / "alembic" / "versions" / f"0099_{EXPAND_REVISION}.py"
    migration.write_text(EXPAND_MIGRATION.format(revision=EXPAND_REVISION, down=head_revision()))
    return directory


def from_release(process: ServiceProcess, release: Path) -> ServiceProcess:
    process.cwd = release
    return process


def migrations_job(stack: Stack, release: Path) -> subprocess.CompletedProcess[str]:
    """`python -m app migrate` from a release's source tree, as its migrations Job runs it."""
    return subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        env=base_env(stack.env), cwd=release, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def database_revision(stack: Stack) -> str:
    with stack.owner.connect() as conn:
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


@pytest.fixture
def rolling_stack(
    postgres: PostgresServer,
    redis_server: RedisServer,
    moto: MotoServer,
    fake_servicedesk: FakeServiceDesk,
    fake_llm: FakeLLM,
) -> Iterator[Stack]:
    """A database of its own: the expand migration must not reach the other fault tests' schema."""
    stack = Stack.create(
        postgres, redis_server, moto, fake_servicedesk, fake_llm, database=f"rolling_{uuid.uuid4().hex[:8]}"
    )
    stack.migrate()
    stack.add_tenant(f"rolling-{uuid.uuid4().hex[:6]}")
    yield stack
    stack.close()


# Six process starts and a drained worker: about a minute alone, two or three on a loaded 2-CPU machine.
# Every wait inside has its own deadline; this only bounds the whole.
@pytest.mark.timeout(540)
def test_rolling_release_and_rollback_lose_no_webhook_and_keep_one_ready_api(
    rolling_stack: Stack, tmp_path: Path, record: Callable[..., None]
) -> None:
    stack = rolling_stack
    (tenant,) = stack.tenants.values()
    next_release = release_n_plus_1(tmp_path)
    router = Router(stack, tenant)
    processes: list[ServiceProcess] = []

    def started(process: ServiceProcess) -> ServiceProcess:
        processes.append(process)
        if isinstance(process, ApiProcess):
            process.start_ready()
            wait_until(lambda: probe(process), PHASE_DEADLINE, what=f"{process.name} Ready")
        else:
            process.start()
            process.wait_ready(PHASE_DEADLINE)
        return process

    def traffic_flows(served_by: str | None = None, more: int = 5) -> None:
        """Poll until `more` webhooks (to `served_by`, if named) were accepted since the call."""
        if served_by is None:
            target, count = stack.database, router.total
        else:
            target, count = served_by, lambda: router.served.get(served_by, 0)
        goal = count() + more
        wait_until(lambda: count() >= goal, PHASE_DEADLINE, what=f"{more} more webhooks via {target}")

    try:
        # Release N serves a steady stream.
        api_n = started(ApiProcess(stack.env))
        assert isinstance(api_n, ApiProcess)
        worker_n = started(WorkerProcess(stack.env))
        router.add("N", api_n)
        router.start()
        traffic_flows("N")

        # Release N+1's migrations Job: the expand step lands under N's feet; N stays Ready.
        job = migrations_job(stack, next_release)
        assert job.returncode == 0, job.stdout + job.stderr
        assert database_revision(stack) == EXPAND_REVISION
        assert probe(api_n), f"release N turned NotReady after an expand migration: {readiness(api_n)}"
        traffic_flows("N")

        # N+1 surges in, then N is drained and stopped as Kubernetes stops a pod.
        api_next = started(from_release(ApiProcess(stack.env), next_release))
        assert isinstance(api_next, ApiProcess)
        worker_next = started(from_release(WorkerProcess(stack.env), next_release))
        router.add("N+1", api_next)
        traffic_flows("N+1", more=3)
        router.drain("N")
        assert_stops_gracefully(api_n)
        assert worker_n.stop(30) == 0, worker_n.logs()[-2000:]
        traffic_flows("N+1")

        # Rollback: N's migrations Job leaves the newer, compatible schema alone; N comes back Ready.
        job = run_cli(stack.env, "migrate")
        assert job.returncode == 0, job.stdout + job.stderr
        assert "nothing to migrate, database left unchanged" in " ".join(job.stdout.split())
        assert database_revision(stack) == EXPAND_REVISION
        api_back = started(ApiProcess(stack.env))
        assert isinstance(api_back, ApiProcess)
        started(WorkerProcess(stack.env))
        router.add("N again", api_back)
        traffic_flows("N again", more=3)
        router.drain("N+1")
        assert_stops_gracefully(api_next)
        assert worker_next.stop(30) == 0, worker_next.logs()[-2000:]
        traffic_flows("N again")
    finally:
        router.close()
        for process in processes:
            process.stop(30)

    assert router.failures == []
    assert router.empty_rotation == []
    statuses = wait_for_jobs(stack, list(router.jobs))
    assert set(statuses.values()) == {"succeeded"}, statuses
    notes = {
        ticket: len(stack.servicedesk.notes_for(tenant.instance, ticket)) for ticket in router.jobs.values()
    }
    assert set(notes.values()) == {1}, notes
    record(webhooks=len(router.jobs), served=dict(router.served))


def wait_for_jobs(stack: Stack, job_ids: list[str]) -> dict[str, str]:
    """Each job's status once none is still queued or running (polled, bounded)."""
    statuses: dict[str, str] = {}

    def settled() -> bool:
        with stack.owner.connect() as conn:
            rows = conn.execute(
                text("SELECT id, status FROM enhancement_jobs WHERE id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": job_ids},
            ).all()
        statuses.clear()
        statuses.update({str(job_id): str(status) for job_id, status in rows})
        return len(statuses) == len(job_ids) and not {"queued", "running"} & set(statuses.values())

    wait_until(settled, 120, interval=0.5, what="every job to finish")
    return statuses
