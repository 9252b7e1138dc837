"""Session-scoped pytest fixtures over tests.support. Import the ones a suite needs in its conftest:

from tests.support.fixtures import api, stack, worker  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.fake_llm import FakeLLM
from tests.support.fake_servicedesk import FakeServiceDesk
from tests.support.moto_server import MotoServer
from tests.support.postgres import PostgresServer
from tests.support.processes import ApiProcess, WorkerProcess
from tests.support.redis_server import RedisServer
from tests.support.stack import LLM_API_KEY, Stack, TenantFixture


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_servicedesk() -> Iterator[FakeServiceDesk]:
    server = FakeServiceDesk()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    server = FakeLLM(LLM_API_KEY)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(
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


@pytest.fixture(scope="session")
def tenant_a(stack: Stack) -> TenantFixture:
    return stack.tenants["tenant-a"]


@pytest.fixture(scope="session")
def tenant_b(stack: Stack) -> TenantFixture:
    return stack.tenants["tenant-b"]


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[ApiProcess]:
    process = ApiProcess(stack.env)
    process.start_ready()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def worker(stack: Stack) -> Iterator[WorkerProcess]:
    process = WorkerProcess(stack.env)
    process.start()
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
def client(api: ApiProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=15) as http:
        yield http
