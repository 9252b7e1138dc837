"""Fault suite: real PostgreSQL, Redis, moto, fake upstreams, API and worker processes, broken on purpose.

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

from tests.support.faults import WorkerFleet
from tests.support.fixtures import (  # noqa: F401 - fixtures are registered by name
    api,
    client,
    fake_llm,
    fake_servicedesk,
    moto,
    postgres,
    redis_server,
    stack,
    tenant_a,
    tenant_b,
)
from tests.support.processes import REPO
from tests.support.stack import Stack

FIGURES = REPO / "build" / "reliability" / "figures.jsonl"


@pytest.fixture
def fleet(stack: Stack) -> Iterator[WorkerFleet]:  # noqa: F811 - `stack` is the imported fixture
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
