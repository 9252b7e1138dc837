"""Fault suite: real PostgreSQL, Redis, moto, fake upstreams, API and worker processes, broken on purpose.

It stops PostgreSQL and Redis, kills processes and makes the upstreams fail, so it runs on instances
of its own (declared below from the shared harness functions), never on the ones the other suites
share: its faults cannot reach their tests, whatever order or worker runs them.

Each test starts the workers it needs (with its own settings) through `fleet` and stops them at the
end, so one test's worker never picks up another test's jobs. Measured figures are appended to
build/reliability/figures.jsonl (docs/reliability.md quotes them)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import fixtures as shared
from harness.faults import WorkerFleet
from harness.processes import REPO
from harness.stack import Stack

FIGURES = REPO / "build" / "reliability" / "figures.jsonl"

# The whole chain up to the API: pytest caches a session fixture once, whatever its dependencies
# resolved to, so overriding only the servers would still hand out the shared stack.
postgres = shared.session_fixture(shared.serve_postgres, "postgres")
redis_server = shared.session_fixture(shared.serve_redis, "redis_server")
moto = shared.session_fixture(shared.serve_moto, "moto")
fake_servicedesk = shared.session_fixture(shared.serve_fake_servicedesk, "fake_servicedesk")
fake_llm = shared.session_fixture(shared.serve_fake_llm, "fake_llm")
stack = shared.session_fixture(shared.serve_stack, "stack")
tenant_a = shared.session_fixture(shared.tenant_a_of, "tenant_a")
tenant_b = shared.session_fixture(shared.tenant_b_of, "tenant_b")
api = shared.session_fixture(shared.serve_api, "api")


@pytest.fixture
def fleet(stack: Stack) -> Iterator[WorkerFleet]:
    workers = WorkerFleet(stack.env)
    yield workers
    workers.stop_all()


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., None]:
    def write(**figures: Any) -> None:
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "test": request.node.name,
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu",
            **figures,
        }
        with Path(FIGURES).open("a") as out:
            out.write(json.dumps(entry, default=str) + "\n")
        print(json.dumps(entry, default=str))

    return write
