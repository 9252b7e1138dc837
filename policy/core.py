"""The small framework every policy module uses: typed views of a resource, property helpers, and the
two constructors that wrap a check function into a CrossGuard policy.

A check is a plain function: it receives a :class:`Resource` (or the list of :class:`StackResource`
for a stack policy) and yields one message per problem. The wrapper appends the policy's remediation
("Fix: ...") so every violation says how to fix it, and filters on resource type, so the same
``ResourceValidationPolicy`` object runs under the real engine and in the offline checker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.settings import PolicySettings, current_settings

Props = Mapping[str, Any]
SECRET = "[secret]"  # noqa: S105 - the plan's redaction marker, not a password


@dataclass(frozen=True)
class Resource:
    """One resource as a resource policy sees it, with the active stack's settings."""

    type: str
    name: str
    urn: str
    props: Props
    settings: PolicySettings


@dataclass(frozen=True)
class StackResource:
    """One resource as a stack policy sees it: its props and its graph edges (URNs)."""

    type: str
    name: str
    urn: str
    props: Props
    parent: str | None
    dependencies: tuple[str, ...]
    # Pulumi's `protect` option: the engine refuses to delete or replace the resource.
    protect: bool = False


# --- severity and the controls a policy implements ------------------------------------------------

Severity = Literal["critical", "high", "medium", "low"]
#: Most to least severe (SARIF levels, docs order and the per-stack ``severityLevels`` knob use it).
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")

#: The frameworks a control id may name, with the version the ids were mapped against.
FRAMEWORKS: dict[str, str] = {
    "CIS-AWS": "CIS Amazon Web Services Foundations Benchmark v3.0.0",
    "CIS-EKS": "CIS Amazon EKS Benchmark v1.5.0",
    "PCI-DSS": "PCI DSS v4.0",
    "SOC2": "SOC 2 Trust Services Criteria (2017, revised points of focus 2022)",
}


@dataclass(frozen=True)
class PolicyMetadata:
    """What the pack says about a policy beyond CrossGuard's fields."""

    severity: Severity
    #: Control ids as ``"<FRAMEWORK> <id>"`` (``"CIS-AWS 2.3.3"``); only where the mapping is honest.
    controls: tuple[str, ...]
    #: Dotted stack-file key (``"database.multiAz"``) that sets what the policy checks, if any, or
    #: ``"policy:<knob>"`` for a knob of PulumiPolicy.yaml (findings are located there).
    stack_key: str | None = None
    #: Resource types a resource policy checks; empty for a stack policy (it sees the whole plan).
    types: tuple[str, ...] = ()
    why: str = ""
    fix: str = ""

    def label(self) -> str:
        """``severity: high; controls: CIS-AWS 2.3.3, SOC2 CC6.6`` (appended to the description the
        engine prints with every violation)."""
        controls = ", ".join(self.controls) or "none mapped"
        return f"severity: {self.severity}; controls: {controls}"


_METADATA: dict[str, PolicyMetadata] = {}


class UnregisteredPolicyError(LookupError):
    """A policy that was not built with :func:`resource_policy` / :func:`stack_policy` (no severity)."""


def metadata(policy_name: str) -> PolicyMetadata:
    try:
        return _METADATA[policy_name]
    except KeyError:
        raise UnregisteredPolicyError(
            f"policy {policy_name!r} has no severity: build it with policy.core.resource_policy or "
            "stack_policy and pass severity= and controls="
        ) from None


def _register(name: str, meta: PolicyMetadata) -> str:
    """Record a policy's metadata; a bad severity or framework, or a second policy of the same name,
    fails at import time. Returns the label appended to the policy's description."""
    if meta.severity not in SEVERITIES:
        raise ValueError(
            f"policy {name!r}: severity must be one of {', '.join(SEVERITIES)}, not {meta.severity!r}"
        )
    for control in meta.controls:
        framework, _, control_id = control.partition(" ")
        if framework not in FRAMEWORKS or not control_id:
            raise ValueError(
                f"policy {name!r}: control {control!r} must be '<framework> <id>' with a framework of "
                f"{', '.join(FRAMEWORKS)}"
            )
    if name in _METADATA:
        raise ValueError(f"policy {name!r} is declared twice")
    _METADATA[name] = meta
    return meta.label()


ResourceCheck = Callable[[Resource], Iterable[str]]
StackCheck = Callable[[Sequence[StackResource], PolicySettings], Iterable[tuple[str, str | None]]]


def _with_fix(message: str, remediation: str) -> str:
    return message if "Fix:" in message else f"{message} Fix: {remediation}"


# The engine calls these through ``functools.partial`` rather than closures made inside the factories
# below: the factories run once, at import, and the checking itself stays in plain module functions
# (which mutation testing can reach, since it swaps a function when it is called).
def _validate_resource(
    wanted: frozenset[str],
    check: ResourceCheck,
    remediation: str,
    args: ResourceValidationArgs,
    report_violation: ReportViolation,
) -> None:
    if args.resource_type not in wanted:
        return
    settings = current_settings(args.get_config())
    resource = Resource(args.resource_type, args.name, args.urn, args.props, settings)
    for message in check(resource):
        report_violation(_with_fix(message, remediation), None)


def _validate_stack(
    check: StackCheck, remediation: str, args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    settings = current_settings(args.get_config())
    resources = [stack_resource(r) for r in args.resources]
    for message, urn in check(resources, settings):
        report_violation(_with_fix(message, remediation), urn)


def resource_policy(
    name: str,
    *,
    types: Iterable[str],
    description: str,
    remediation: str,
    check: ResourceCheck,
    severity: Severity,
    controls: Iterable[str],
    stack_key: str | None = None,
) -> ResourceValidationPolicy:
    """A mandatory resource policy that runs ``check`` on resources of ``types``.

    ``severity`` and ``controls`` are required (use ``controls=()`` when no framework maps honestly):
    the docs, every finding and the per-stack ``severityLevels`` knob read them.
    """
    wanted = frozenset(types)
    label = _register(
        name,
        PolicyMetadata(severity, tuple(controls), stack_key, tuple(sorted(wanted)), description, remediation),
    )

    return ResourceValidationPolicy(
        name=name,
        description=f"{description} Fix: {remediation} ({label})",
        validate=partial(_validate_resource, wanted, check, remediation),
        enforcement_level=EnforcementLevel.MANDATORY,
        remediation_steps=remediation,
    )


def stack_resource(resource: PolicyResource) -> StackResource:
    parent = resource.parent.urn if resource.parent is not None else None
    return StackResource(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        props=resource.props,
        parent=parent,
        dependencies=tuple(d.urn for d in resource.dependencies),
        protect=bool(resource.opts.protect),
    )


def stack_policy(
    name: str,
    *,
    description: str,
    remediation: str,
    check: StackCheck,
    severity: Severity,
    controls: Iterable[str],
    stack_key: str | None = None,
) -> StackValidationPolicy:
    """A mandatory stack policy: ``check`` sees every resource and yields (message, urn or None).

    ``severity`` and ``controls`` are required, as for :func:`resource_policy`.
    """
    label = _register(
        name, PolicyMetadata(severity, tuple(controls), stack_key, (), description, remediation)
    )

    return StackValidationPolicy(
        name=name,
        description=f"{description} Fix: {remediation} ({label})",
        validate=partial(_validate_stack, check, remediation),
        enforcement_level=EnforcementLevel.MANDATORY,
        remediation_steps=remediation,
    )


# --- property helpers: robust to missing values, floats for ints, and "[secret]" -----------------


def get(props: Any, path: str) -> Any:
    """``props["a"]["b"]`` for ``path="a.b"``; None when any step is missing or not a mapping."""
    value: Any = props
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = cast(Mapping[str, Any], value).get(key)
    return value


def as_dict(value: Any) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """A list value as a list (the engine hands lists over as read-only Sequence proxies)."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(cast(Sequence[Any], value))
    return []


def dicts(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in a list value (a single mapping counts as a one-element list)."""
    if isinstance(value, Mapping):
        return [cast(Mapping[str, Any], value)]
    return [as_dict(item) for item in as_list(value) if isinstance(item, Mapping)]


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in as_list(value) if item is not None]


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def present(value: Any) -> bool:
    """A non-empty value (a secret reference counts as present)."""
    if isinstance(value, str):
        return value != ""
    if isinstance(value, Mapping | Sequence):
        return len(cast(Sized, value)) > 0
    return value is not None


def json_document(value: Any) -> Mapping[str, Any]:
    """A policy document given as JSON text or already as a mapping; {} when unreadable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return as_dict(value)


def by_type(resources: Iterable[StackResource], *types: str) -> list[StackResource]:
    return [r for r in resources if r.type in types]
