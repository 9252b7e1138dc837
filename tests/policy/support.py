"""Run one policy by hand, exactly as CrossGuard calls it (args built by hand, not by the checker;
props wrapped in the engine's own read-only proxies, as the engine hands them over)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

from policy.pack import POLICIES
from policy.settings import stack_context

BY_NAME: dict[str, Policy] = {p.name: p for p in POLICIES}


def options(parent: str | None = None, *, protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=parent,
    )


def validate_resource(
    policy: Policy,
    resource_type: str,
    props: Mapping[str, Any],
    *,
    name: str = "res",
    stack: str = "production",
    config: Mapping[str, Any] | None = None,
) -> list[str]:
    assert isinstance(policy, ResourceValidationPolicy)
    found: list[str] = []
    args = ResourceValidationArgs(
        resource_type=resource_type,
        props=unknown_checking_proxy(dict(props)),
        urn=f"urn:pulumi:{stack}::ai-agents-platform::{resource_type}::{name}",
        name=name,
        opts=options(),
        provider=None,
        config=config,
    )
    with stack_context(stack):
        policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def validate_stack(
    policy: Policy,
    resources: list[dict[str, Any]],
    *,
    stack: str = "production",
    config: Mapping[str, Any] | None = None,
) -> list[tuple[str, str | None]]:
    assert isinstance(policy, StackValidationPolicy)
    by_urn = {
        r["urn"]: PolicyResource(
            r["type"],
            unknown_checking_proxy(dict(r["props"])),
            r["urn"],
            r["name"],
            options(r.get("parent"), protect=bool(r.get("protect"))),
            None,
            None,
            [],
            {},
        )
        for r in resources
    }
    for r in resources:
        by_urn[r["urn"]].parent = by_urn.get(r.get("parent") or "")
        by_urn[r["urn"]].dependencies = [by_urn[d] for d in r.get("dependsOn", []) if d in by_urn]
    found: list[tuple[str, str | None]] = []
    with stack_context(stack):
        policy.validate(
            StackValidationArgs(list(by_urn.values()), config=config),
            lambda message, urn=None: found.append((message, urn)),
        )
    return found


def violations(
    policy: Policy, plan: list[dict[str, Any]], *, stack: str = "production"
) -> list[tuple[str, str | None]]:
    """Every violation of ``policy`` over a plan's resources (resource policies: urn of the resource)."""
    if isinstance(policy, StackValidationPolicy):
        return validate_stack(policy, plan, stack=stack)
    return [
        (message, r["urn"])
        for r in plan
        for message in validate_resource(policy, r["type"], r["props"], name=r["name"], stack=stack)
    ]


def fix(policy: Policy, detail: str) -> str:
    return f"{detail} Fix: {policy.remediation_steps}"
