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
from typing import Any, cast

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


ResourceCheck = Callable[[Resource], Iterable[str]]
StackCheck = Callable[[Sequence[StackResource], PolicySettings], Iterable[tuple[str, str | None]]]


def _with_fix(message: str, remediation: str) -> str:
    return message if "Fix:" in message else f"{message} Fix: {remediation}"


def resource_policy(
    name: str,
    *,
    types: Iterable[str],
    description: str,
    remediation: str,
    check: ResourceCheck,
) -> ResourceValidationPolicy:
    """A mandatory resource policy that runs ``check`` on resources of ``types``."""
    wanted = frozenset(types)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in wanted:
            return
        settings = current_settings(args.get_config())
        resource = Resource(args.resource_type, args.name, args.urn, args.props, settings)
        for message in check(resource):
            report_violation(_with_fix(message, remediation), None)

    return ResourceValidationPolicy(
        name=name,
        description=f"{description} Fix: {remediation}",
        validate=validate,
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
    )


def stack_policy(
    name: str, *, description: str, remediation: str, check: StackCheck
) -> StackValidationPolicy:
    """A mandatory stack policy: ``check`` sees every resource and yields (message, urn or None)."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        settings = current_settings(args.get_config())
        resources = [stack_resource(r) for r in args.resources]
        for message, urn in check(resources, settings):
            report_violation(_with_fix(message, remediation), urn)

    return StackValidationPolicy(
        name=name,
        description=f"{description} Fix: {remediation}",
        validate=validate,
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
