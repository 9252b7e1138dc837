"""Run Pulumi code under the offline plan's mocks and look at what it registered.

The same mocks and capture as ``python -m stacks plan``, so a component test sees exactly what the
plan (and CrossGuard) would: the engine's camelCase input names, secrets still wrapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime.sync_await import _sync_await  # pyright: ignore[reportPrivateUsage]

from infra.config import PROJECT
from stacks.mocks import PlanMocks, Registration, unwrap_secrets
from stacks.plan import capture_program, capture_under_mocks, load_config


@dataclass
class Captured:
    """What a program registered, with lookups by type and logical name."""

    registrations: list[Registration]

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> Registration:
        matches = [r for r in self.of_type(type_token) if name is None or r.name == name]
        assert len(matches) == 1, f"expected one {type_token} {name or ''}, found {[r.name for r in matches]}"
        return matches[0]

    def inputs(self, type_token: str, name: str | None = None) -> dict[str, Any]:
        """The plain inputs of one resource (secrets unwrapped)."""
        return unwrap_secrets(self.one(type_token, name).inputs)

    def outputs(self, type_token: str, name: str | None = None) -> dict[str, Any]:
        """What the mocks answered for one resource (ARNs, ids, endpoints)."""
        return self.one(type_token, name).outputs

    def children_of(self, urn: str) -> Iterator[Registration]:
        return (r for r in self.registrations if r.parent == urn)


def run(program: Callable[[], None], *, stack: str = "staging", region: str = "eu-west-1") -> Captured:
    """Run ``program`` (which declares resources) under mocks and wait for every registration."""
    capture = capture_under_mocks(
        PlanMocks(region), project=PROJECT, stack=stack, config_values={}, program=lambda: program
    )
    return Captured(capture.registrations)


def run_stack(stack: str) -> Captured:
    """The whole program (``infra.program.main``) with the stack's own config, as the plan runs it."""
    values, config = load_config(stack)
    return Captured(capture_program(stack, values, config).registrations)


def resolve(output: pulumi.Output[Any]) -> Any:
    """The value of an Output after ``run`` (only valid inside the program or right after it)."""
    return _sync_await(output.future())
