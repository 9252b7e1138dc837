"""A markdown diff of two offline plans, short enough for a PR comment.

Resources are matched by URN. A changed resource lists the properties that differ (secrets stay
``[secret]``: plans never hold their values). Changes to properties that make the provider replace the
resource are flagged "replace" — a curated list for the resources where a surprise replacement hurts
(data stores, networks, immutable Kubernetes fields); the real ``pulumi preview`` is the authority.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Property paths whose change replaces the resource (from the providers' schemas: "forces new").
REPLACING: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone", "vpcId"),
    "aws:rds/instance:Instance": (
        "engine",
        "identifier",
        "dbName",
        "kmsKeyId",
        "storageEncrypted",
        "dbSubnetGroupName",
    ),
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        "replicationGroupId",
        "atRestEncryptionEnabled",
        "kmsKeyId",
        "subnetGroupName",
    ),
    "aws:ecr/repository:Repository": ("name", "encryptionConfigurations"),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage"),
    "eks:index:Cluster": ("name", "encryptionConfigKeyArn", "privateSubnetIds", "publicSubnetIds"),
    "kubernetes:batch/v1:Job": ("spec",),
    "kubernetes:core/v1:Namespace": ("metadata.name",),
    "kubernetes:apps/v1:Deployment": ("metadata.name", "spec.selector"),
}
DEFAULT_LIMIT = 60_000  # GitHub's comment limit is 65,536 characters; leave room for the header.
VALUE_WIDTH = 80


class PlanFileError(Exception):
    """A plan file is missing or not a plan: exit 2 with this one line."""


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any


@dataclass
class ResourceDiff:
    urn: str
    type: str
    changes: list[Change]

    @property
    def replaces(self) -> bool:
        forcing = REPLACING.get(self.type, ())
        return any(c.path == p or c.path.startswith(f"{p}.") for c in self.changes for p in forcing)


@dataclass
class PlanDiff:
    stack: str
    added: list[Mapping[str, Any]] = field(default_factory=list[Mapping[str, Any]])
    removed: list[Mapping[str, Any]] = field(default_factory=list[Mapping[str, Any]])
    changed: list[ResourceDiff] = field(default_factory=list[ResourceDiff])
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def load_plan(path: Path) -> dict[str, Any]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanFileError(f"{path}: not a JSON plan ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("resources"), list):  # pyright: ignore[reportUnknownMemberType]
        raise PlanFileError(f"{path}: not a plan (expected an object with a 'resources' list)")
    return data  # pyright: ignore[reportUnknownVariableType]


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted paths to leaves; lists are indexed (``ingress[0].cidrBlocks[1]``)."""
    if isinstance(value, dict) and value:
        for key, item in value.items():  # pyright: ignore[reportUnknownVariableType]
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))  # pyright: ignore[reportUnknownArgumentType]
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def property_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    before, after = dict(flatten(dict(old))), dict(flatten(dict(new)))
    return [
        Change(path, before.get(path), after.get(path))
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


def diff_plans(old: Mapping[str, Any], new: Mapping[str, Any]) -> PlanDiff:
    before = {str(r["urn"]): r for r in old["resources"]}
    after = {str(r["urn"]): r for r in new["resources"]}
    result = PlanDiff(stack=str(new.get("stack", "?")))
    result.added = [after[u] for u in sorted(after.keys() - before.keys())]
    result.removed = [before[u] for u in sorted(before.keys() - after.keys())]
    for urn in sorted(before.keys() & after.keys()):
        changes = property_changes(before[urn].get("props") or {}, after[urn].get("props") or {})
        if changes:
            result.changed.append(ResourceDiff(urn, str(after[urn]["type"]), changes))
        else:
            result.unchanged += 1
    return result


def _short(value: Any) -> str:
    text = "—" if value is None else json.dumps(value) if not isinstance(value, str) else value
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"`{text[: VALUE_WIDTH - 1]}…`" if len(text) > VALUE_WIDTH else f"`{text}`"


def _name(resource: Mapping[str, Any]) -> str:
    return f"`{resource['type']}` **{resource['name']}**"


def _resource_section(diff: ResourceDiff) -> list[str]:
    name = diff.urn.rsplit("::", 1)[-1]
    verb = "replace" if diff.replaces else "update"
    lines = [
        f"#### {verb}: `{diff.type}` **{name}**",
        "",
        "| property | before | after |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{c.path}` | {_short(c.old)} | {_short(c.new)} |" for c in diff.changes]
    return [*lines, ""]


def _policy_lines(verdict: Mapping[str, Any] | None) -> list[str]:
    if verdict is None:
        return []
    violations: list[Mapping[str, Any]] = list(verdict.get("violations") or [])
    if not violations:
        return [f"**Policy:** {verdict.get('policies', 0)} policies, no violations ✅", ""]
    lines = [
        f"**Policy:** {len(violations)} violation(s) ❌",
        "",
        "| policy | resource | message |",
        "| --- | --- | --- |",
    ]
    for v in violations:
        message = str(v.get("message", "")).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {v.get('policy')} | `{v.get('urn') or 'stack'}` | {message} |")
    return [*lines, ""]


def render(
    diff: PlanDiff,
    verdict: Mapping[str, Any] | None = None,
    limit: int = DEFAULT_LIMIT,
    cost: str | None = None,
) -> str:
    """Markdown for a PR comment; details past ``limit`` characters are folded away and counted.
    ``cost`` (the monthly delta, stacks/cost.py) comes right under the title."""
    replaced = sum(1 for d in diff.changed if d.replaces)
    head = [
        f"### Offline plan diff: `{diff.stack}`",
        "",
        *([cost, ""] if cost else []),
        f"**{len(diff.added)}** to add, **{len(diff.changed) - replaced}** to update, **{replaced}** to replace, "
        f"**{len(diff.removed)}** to delete, {diff.unchanged} unchanged.",
        "",
        *_policy_lines(verdict),
    ]
    if diff.empty:
        return "\n".join([*head, "No resource changes."]) + "\n"
    body: list[list[str]] = []
    if diff.added:
        body.append(["#### add", "", *[f"- {_name(r)}" for r in diff.added], ""])
    if diff.removed:
        body.append(["#### delete", "", *[f"- {_name(r)}" for r in diff.removed], ""])
    # Replacements first: they are what a reviewer must not miss.
    body += [_resource_section(d) for d in sorted(diff.changed, key=lambda d: not d.replaces)]
    text = "\n".join(head)
    shown = 0
    for block in body:
        chunk = "\n".join(block) + "\n"
        if len(text) + len(chunk) > limit:
            break
        text += "\n" + chunk
        shown += 1
    folded = len(body) - shown
    if folded:
        text += f"\n_{folded} more section(s) folded to fit a PR comment; run `python -m stacks diff` locally for all._\n"
    return text
