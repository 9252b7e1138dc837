"""The suite's shared pytest fixtures, registered once for every test by tests/conftest.py.

Each server is started once per test session (per pytest-xdist worker) and shared by every suite that
does not break it. A suite that stops or kills servers on purpose declares its own instances of the
same fixtures in its conftest (`session_fixture` over the same `serve_*` functions), so its faults
never reach another suite's tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import Connection, create_engine

from harness import processes
from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.moto_server import MotoServer
from harness.postgres import PostgresServer
from harness.processes import ApiProcess, WorkerProcess
from harness.redis_server import RedisServer
from harness.stack import LLM_API_KEY, Stack, TenantFixture


@pytest.fixture(scope="session", autouse=True)
def process_logs_in_pytest_temp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every process the suite starts logs under pytest's temporary directory, not loose in /tmp."""
    processes.LOG_DIR = tmp_path_factory.mktemp("process-logs")


@pytest.fixture(autouse=True)
def no_boto3_default_session_carried_over() -> Iterator[None]:
    """boto3's default session keeps the credentials it resolved first: a test that sets other ones
    (another moto account) must not hand them to the next test in this process."""
    yield
    boto3.DEFAULT_SESSION = None


def serve_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.destroy()


def serve_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.destroy()


def serve_moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


def serve_fake_servicedesk() -> Iterator[FakeServiceDesk]:
    server = FakeServiceDesk()
    server.start()
    yield server
    server.stop()


def serve_fake_llm() -> Iterator[FakeLLM]:
    server = FakeLLM(LLM_API_KEY)
    server.start()
    yield server
    server.stop()


def serve_stack(
    postgres: PostgresServer,
    redis_server: RedisServer,
    moto: MotoServer,
    fake_servicedesk: FakeServiceDesk,
    fake_llm: FakeLLM,
) -> Iterator[Stack]:
    """Migrated database and two tenants (on-premises authtoken and cloud OAuth), set up by the CLI."""
    stack = Stack.create(postgres, redis_server, moto, fake_servicedesk, fake_llm)
    stack.migrate()
    stack.add_tenant("tenant-a", "authtoken")
    stack.add_tenant("tenant-b", "oauth")
    yield stack
    stack.close()


def tenant_a_of(stack: Stack) -> TenantFixture:
    return stack.tenants["tenant-a"]


def tenant_b_of(stack: Stack) -> TenantFixture:
    return stack.tenants["tenant-b"]


def serve_api(stack: Stack) -> Iterator[ApiProcess]:
    process = ApiProcess(stack.env)
    process.start_ready()
    yield process
    process.stop()


def serve_worker(stack: Stack) -> Iterator[WorkerProcess]:
    process = WorkerProcess(stack.env)
    process.start()
    process.wait_ready()
    yield process
    process.stop()


def session_fixture(serve: Callable[..., Any], name: str) -> Any:
    """`serve` as a session-scoped fixture called `name`."""
    return pytest.fixture(scope="session", name=name)(serve)


postgres = session_fixture(serve_postgres, "postgres")
redis_server = session_fixture(serve_redis, "redis_server")
moto = session_fixture(serve_moto, "moto")
fake_servicedesk = session_fixture(serve_fake_servicedesk, "fake_servicedesk")
fake_llm = session_fixture(serve_fake_llm, "fake_llm")
stack = session_fixture(serve_stack, "stack")
tenant_a = session_fixture(tenant_a_of, "tenant_a")
tenant_b = session_fixture(tenant_b_of, "tenant_b")
api = session_fixture(serve_api, "api")
worker = session_fixture(serve_worker, "worker")


@pytest.fixture
def app_conn(stack: Stack) -> Iterator[Connection]:
    """A connection as the service's own database role: row-level security applies to it."""
    engine = create_engine(stack.env["DATABASE_URL"])
    with engine.connect() as conn:
        yield conn
    engine.dispose()


@pytest.fixture
def client(api: ApiProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=15) as http:
        yield http
