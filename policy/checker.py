"""The offline checker: every policy of the pack over a plan file (``build/plan/<stack>/plan.json``).

The plan's resources are turned into exactly what CrossGuard hands a policy
(``ResourceValidationArgs`` / ``StackValidationArgs`` of ``PolicyResource``), and the very same policy
objects as the CrossGuard pack are called, so there is one implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pulumi_policy import (
    EnforcementLevel,
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

from policy.core import metadata
from policy.pack import PACK_NAME, POLICIES, enforcement_level
from policy.settings import load_settings, stack_context


class PlanError(ValueError):
    """The plan file is not in the documented shape; the message says what is wrong."""


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement_level: str
    urn: str | None
    message: str
    severity: str = ""
    controls: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "enforcementLevel": self.enforcement_level,
            "severity": self.severity,
            "controls": list(self.controls),
            "urn": self.urn,
            "message": self.message,
        }


@dataclass
class PolicyReport:
    policy_pack: str
    stack: str
    policies: int
    violations: list[Violation] = field(default_factory=list[Violation])

    @property
    def mandatory_count(self) -> int:
        return sum(1 for v in self.violations if v.enforcement_level == EnforcementLevel.MANDATORY.value)

    @property
    def passed(self) -> bool:
        return self.mandatory_count == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "policyPack": self.policy_pack,
            "stack": self.stack,
            "policies": self.policies,
            "violations": [v.to_json() for v in self.violations],
            "passed": self.passed,
        }


@dataclass(frozen=True)
class _Entry:
    urn: str
    type: str
    name: str
    parent: str | None
    depends_on: tuple[str, ...]
    protect: bool
    props: Mapping[str, Any]


def _entries(plan: Mapping[str, Any]) -> list[_Entry]:
    raw = plan.get("resources")
    if not isinstance(raw, list):
        raise PlanError("'resources' must be a list")
    entries: list[_Entry] = []
    for index, item in enumerate(cast(list[Any], raw)):
        if not isinstance(item, Mapping):
            raise PlanError(f"resources[{index}] must be an object")
        resource = cast(Mapping[str, Any], item)
        missing = [k for k in ("urn", "type", "name") if not isinstance(resource.get(k), str)]
        if missing:
            raise PlanError(f"resources[{index}] has no string {missing[0]!r}")
        props: Any = resource.get("props") or {}
        if not isinstance(props, Mapping):
            raise PlanError(f"resources[{index}].props must be an object")
        entries.append(
            _Entry(
                urn=resource["urn"],
                type=resource["type"],
                name=resource["name"],
                parent=resource.get("parent") or None,
                depends_on=tuple(str(d) for d in cast(list[Any], resource.get("dependsOn") or [])),
                protect=bool(resource.get("protect")),
                # Wrapped as the engine wraps every resource's props before a policy sees them:
                # read-only Mapping/Sequence proxies (not dict/list) that raise on unknown values.
                props=unknown_checking_proxy(dict(cast(Mapping[str, Any], props))),
            )
        )
    return entries


def _options(entry: _Entry) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=entry.protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=entry.parent,
    )


def resource_args(entry: _Entry) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type=entry.type,
        props=entry.props,
        urn=entry.urn,
        name=entry.name,
        opts=_options(entry),
        provider=None,
    )


def stack_args(entries: Sequence[_Entry]) -> StackValidationArgs:
    """The whole plan as CrossGuard's stack validation sees it (parents and dependencies linked)."""
    resources = {
        e.urn: PolicyResource(e.type, e.props, e.urn, e.name, _options(e), None, None, [], {})
        for e in entries
    }
    for entry in entries:
        resource = resources[entry.urn]
        resource.parent = resources.get(entry.parent) if entry.parent else None
        resource.dependencies = [resources[d] for d in entry.depends_on if d in resources]
    return StackValidationArgs(list(resources.values()))


def _run(policy: Policy, level: str, entries: Sequence[_Entry], report: PolicyReport) -> None:
    meta = metadata(policy.name)

    def reporter(default_urn: str | None) -> Any:
        def report_violation(message: str, urn: str | None = None) -> None:
            report.violations.append(
                Violation(policy.name, level, urn or default_urn, message, meta.severity, meta.controls)
            )

        return report_violation

    # Our policies are synchronous (core.resource_policy / core.stack_policy): nothing to await.
    if isinstance(policy, ResourceValidationPolicy):
        for entry in entries:
            policy.validate(resource_args(entry), reporter(entry.urn))  # pyright: ignore[reportUnknownMemberType]
    elif isinstance(policy, StackValidationPolicy):
        policy.validate(stack_args(entries), reporter(None))  # pyright: ignore[reportUnknownMemberType]


def check_plan(plan: Mapping[str, Any], stack: str | None = None) -> PolicyReport:
    """Run every policy of the pack over a plan; ``stack`` overrides the plan's own ``stack``."""
    stack_name = stack if stack is not None else str(plan.get("stack") or "")
    entries = _entries(plan)
    settings = load_settings(stack_name)
    report = PolicyReport(PACK_NAME, stack_name, len(POLICIES))
    with stack_context(stack_name):
        for policy in POLICIES:
            level = enforcement_level(policy, settings)
            if level != EnforcementLevel.DISABLED:
                _run(policy, level.value, entries, report)
    return report
