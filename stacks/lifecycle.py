"""Plans of the program at successive moments, for judging a deploy, upgrade or rollback by what the
previous one left (tests/infra/test_lifecycle.py runs the sequence; docs/offline-plan.md says what it
proves).

Each moment is the stack's config (possibly edited) and a commit; the plan is what ``stacks plan``
would write, in process. ``refreshed`` adds what the providers would report at the next refresh, so
``stacks.diff`` compares the next program with the state as the engine would.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from typing import Any

from infra.config import PROJECT, parse_stack_config
from stacks.plan import capture_program, resource_entries


@contextmanager
def _commit(git_sha: str) -> Generator[None]:
    """The commit CI would deploy (``GITHUB_SHA``), for the duration of one plan."""
    previous = os.environ.get("GITHUB_SHA")
    os.environ["GITHUB_SHA"] = git_sha
    try:
        yield
    finally:
        if previous is None:
            del os.environ["GITHUB_SHA"]
        else:
            os.environ["GITHUB_SHA"] = previous


def plan_at(stack: str, values: Mapping[str, Any], git_sha: str) -> dict[str, Any]:
    """The plan document (as plan.json holds it) of the program at ``git_sha`` with these config values."""
    config = parse_stack_config(values, f"Pulumi.{stack}.yaml")
    with _commit(git_sha):
        capture = capture_program(stack, dict(values), config)
    return {
        "project": PROJECT,
        "stack": stack,
        "resources": resource_entries(capture.registrations),
        "outputs": capture.outputs,
    }


def with_section(values: Mapping[str, Any], section: str, **changes: Any) -> dict[str, Any]:
    """A copy of the config values with keys of one section (camelCase, as in the stack file) changed."""
    edited = copy.deepcopy(dict(values))
    key = f"{PROJECT}:{section}"
    edited[key] = {**dict(edited.get(key) or {}), **changes}
    return edited


def refreshed(plan: Mapping[str, Any], type_: str, reported: Mapping[str, Any]) -> dict[str, Any]:
    """``plan`` as the state holds it after a refresh in which the provider reported ``reported`` for
    every resource of ``type_`` (an RDS minor upgrade, a new EKS platform version)."""
    state = copy.deepcopy(dict(plan))
    for resource in state["resources"]:
        if resource["type"] == type_:
            resource["state"] = {**dict(resource.get("state") or {}), **reported}
    return state
