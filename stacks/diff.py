"""A markdown diff of two offline plans, short enough for a PR comment.

Resources are matched by URN. A changed resource lists the properties that differ (secrets stay
``[secret]``: plans never hold their values). Changes to properties that make the provider replace the
resource are flagged "replace" — a curated list for the resources where a surprise replacement hurts
(every stateful type the program declares, networks, immutable Kubernetes fields); the real
``pulumi preview`` is the authority.

A plan entry may carry ``state``: what the provider reported for some of its inputs at the last
refresh (RDS's running minor version, say). The "before" side of a diff then reads those values, as the
engine compares the program's inputs with the refreshed state; a value the program does not set is the
provider's to keep and is no change. At the top of the comment a warning names every replace or delete
of a stateful or protected resource and every version that would go down.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy.stack import STATEFUL

# Property paths whose change replaces the resource: the arguments the provider's documentation marks
# "Forces new resource" (pulumi-aws bridges terraform-provider-aws, whose ForceNew schema decides; the
# Pulumi registry page of each resource repeats it), read 2026-12-02. The comment names the page.
_TF = "https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/"
REPLACING: dict[str, tuple[str, ...]] = {
    # {_TF}vpc, {_TF}subnet
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone", "vpcId"),
    # {_TF}db_instance: engine, identifier(_prefix), db_name, kms_key_id, storage_encrypted,
    # db_subnet_group_name (outside a VPC move), username, character_set_name, timezone.
    "aws:rds/instance:Instance": (
        "engine",
        "identifier",
        "identifierPrefix",
        "dbName",
        "kmsKeyId",
        "storageEncrypted",
        "dbSubnetGroupName",
        "username",
        "characterSetName",
        "timezone",
    ),
    # {_TF}db_parameter_group, {_TF}db_subnet_group: name and family.
    "aws:rds/parameterGroup:ParameterGroup": ("name", "namePrefix", "family"),
    "aws:rds/subnetGroup:SubnetGroup": ("name", "namePrefix"),
    # {_TF}elasticache_replication_group: replication_group_id, at_rest_encryption_enabled, kms_key_id,
    # subnet_group_name, port; an engine_version below the running one also replaces (see VERSIONS).
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        "replicationGroupId",
        "atRestEncryptionEnabled",
        "kmsKeyId",
        "subnetGroupName",
        "port",
    ),
    # {_TF}elasticache_parameter_group, {_TF}elasticache_subnet_group
    "aws:elasticache/parameterGroup:ParameterGroup": ("name", "family"),
    "aws:elasticache/subnetGroup:SubnetGroup": ("name",),
    # {_TF}ecr_repository: name, encryption_configuration.
    "aws:ecr/repository:Repository": ("name", "encryptionConfigurations"),
    # {_TF}kms_key: customer_master_key_spec, key_usage, multi_region, custom_key_store_id.
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage", "multiRegion", "customKeyStoreId"),
    # {_TF}secretsmanager_secret: name, name_prefix.
    "aws:secretsmanager/secret:Secret": ("name", "namePrefix"),
    # {_TF}cloudwatch_log_group: name, name_prefix.
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix"),
    # pulumi-eks Cluster (https://www.pulumi.com/registry/packages/eks/api-docs/cluster/) creates an
    # aws_eks_cluster ({_TF}eks_cluster: name, encryption_config) in the given subnets.
    "eks:index:Cluster": ("name", "encryptionConfigKeyArn", "privateSubnetIds", "publicSubnetIds"),
    # pulumi-eks ManagedNodeGroup creates an aws_eks_node_group ({_TF}eks_node_group): node_group_name
    # (_prefix), instance_types, capacity_type, subnet_ids, node_role_arn, ami_type, disk_size,
    # cluster_name and the launch template's id.
    "eks:index:ManagedNodeGroup": (
        "nodeGroupName",
        "nodeGroupNamePrefix",
        "instanceTypes",
        "capacityType",
        "subnetIds",
        "nodeRoleArn",
        "amiType",
        "diskSize",
        "clusterName",
        "launchTemplate.id",
    ),
    # {_TF}eks_addon: cluster_name, addon_name.
    "aws:eks/addon:Addon": ("clusterName", "addonName"),
    # pulumi-random (https://www.pulumi.com/registry/packages/random/api-docs/randomid/): every input.
    "random:index/randomId:RandomId": ("byteLength", "keepers", "prefix"),
    "random:index/randomPassword:RandomPassword": (
        "length",
        "special",
        "overrideSpecial",
        "minLower",
        "minUpper",
        "minNumeric",
        "minSpecial",
        "keepers",
    ),
    # Kubernetes: a Job's pod template and a Deployment's selector are immutable (the API server
    # refuses the change; pulumi-kubernetes replaces), as is any object's name.
    "kubernetes:batch/v1:Job": ("spec", "metadata.name"),
    "kubernetes:core/v1:Namespace": ("metadata.name",),
    "kubernetes:apps/v1:Deployment": ("metadata.name", "spec.selector"),
}
# Versions that may only go up: the service refuses a downgrade (RDS, EKS), or the provider plans it as
# a replacement (ElastiCache: {_TF}elasticache_replication_group, engine_version). Where the provider
# ignores a minor under a major-only version, a configured prefix of the running version is no change
# (RDS: {_TF}db_instance engine_version and engine_version_actual; terraform-provider-aws#39579).
VERSIONS: dict[str, str] = {
    "aws:rds/instance:Instance": "engineVersion",
    "aws:elasticache/replicationGroup:ReplicationGroup": "engineVersion",
    "eks:index:Cluster": "version",
    "eks:index:ManagedNodeGroup": "version",
    "kubernetes:helm.sh/v3:Release": "version",
}
PREFIX_SUPPRESSED = {"aws:rds/instance:Instance": "engineVersion"}
REPLACED_ON_DOWNGRADE = {"aws:elasticache/replicationGroup:ReplicationGroup"}
DEFAULT_LIMIT = 60_000  # GitHub's comment limit is 65,536 characters; leave room for the header.
VALUE_WIDTH = 80


class PlanFileError(Exception):
    """A plan file is missing or not a plan: exit 2 with this one line."""


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any


def version_key(value: Any) -> tuple[int, ...]:
    """``(17, 7)`` of ``"17.7"``, ``(1, 34)`` of ``"1.34"``, ``(79, 1, 0)`` of ``"v79.1.0"``."""
    return tuple(int(n) for n in re.findall(r"\d+", str(value)))


def is_prefix(short: Any, long: Any) -> bool:
    """``17`` names ``17.7``; ``1.33`` names ``1.33``."""
    head, full = version_key(short), version_key(long)
    return bool(head) and full[: len(head)] == head


@dataclass
class ResourceDiff:
    urn: str
    type: str
    changes: list[Change]
    # Pulumi's protect option on either side: the engine refuses to replace or delete the resource.
    protected: bool = False

    @property
    def downgrade(self) -> Change | None:
        """The version change that goes down, if any."""
        path = VERSIONS.get(self.type)
        for change in self.changes:
            if change.path != path or change.old is None or change.new is None:
                continue
            if not is_prefix(change.new, change.old) and version_key(change.new) < version_key(change.old):
                return change
        return None

    @property
    def replaces(self) -> bool:
        forcing = REPLACING.get(self.type, ())
        if self.type in REPLACED_ON_DOWNGRADE and self.downgrade is not None:
            return True
        return any(
            c.path == p or c.path.startswith((f"{p}.", f"{p}[")) for c in self.changes for p in forcing
        )

    @property
    def stateful(self) -> bool:
        return self.type in STATEFUL or self.protected


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


def property_changes(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    state: Mapping[str, Any] | None = None,
    suppressed_prefix: str | None = None,
) -> list[Change]:
    """What differs between the old inputs (overlaid with the refreshed ``state`` of the paths the
    program sets) and the new inputs; a ``suppressed_prefix`` path set to a prefix of the running value
    is no change."""
    before, after = dict(flatten(dict(old))), dict(flatten(dict(new)))
    for path, value in flatten(dict(state or {})):
        if path in before or path in after:
            before[path] = value
    return [
        Change(path, before.get(path), after.get(path))
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
        and not (path == suppressed_prefix and is_prefix(after.get(path), before.get(path)))
    ]


def diff_plans(old: Mapping[str, Any], new: Mapping[str, Any]) -> PlanDiff:
    before = {str(r["urn"]): r for r in old["resources"]}
    after = {str(r["urn"]): r for r in new["resources"]}
    result = PlanDiff(stack=str(new.get("stack", "?")))
    result.added = [after[u] for u in sorted(after.keys() - before.keys())]
    result.removed = [before[u] for u in sorted(before.keys() - after.keys())]
    for urn in sorted(before.keys() & after.keys()):
        kind = str(after[urn]["type"])
        changes = property_changes(
            before[urn].get("props") or {},
            after[urn].get("props") or {},
            before[urn].get("state"),
            PREFIX_SUPPRESSED.get(kind),
        )
        if changes:
            protected = bool(before[urn].get("protect") or after[urn].get("protect"))
            result.changed.append(ResourceDiff(urn, kind, changes, protected))
        else:
            result.unchanged += 1
    return result


def _is_stateful(resource: Mapping[str, Any]) -> bool:
    return resource.get("type") in STATEFUL or bool(resource.get("protect"))


@dataclass(frozen=True)
class Caution:
    """A change a reviewer must not miss: state lost (``delete``, ``replace``) or a ``downgrade``."""

    kind: str
    type: str
    name: str
    protected: bool = False
    change: Change | None = None

    def line(self) -> str:
        what = f"{'protected ' if self.protected else ''}`{self.type}` **{self.name}**"
        if self.change is None:
            return f"**{self.kind}** of {what}"
        return f"**{self.kind}** of {what}: `{self.change.path}` {self.change.old} → {self.change.new}"


def cautions(diff: PlanDiff) -> list[Caution]:
    """Each replace or delete of a stateful or protected resource, and each version going down."""
    found = [
        Caution("delete", str(r["type"]), str(r["name"]), bool(r.get("protect")))
        for r in diff.removed
        if _is_stateful(r)
    ]
    for d in diff.changed:
        name = d.urn.rsplit("::", 1)[-1]
        if d.replaces and d.stateful:
            found.append(Caution("replace", d.type, name, d.protected))
        if (down := d.downgrade) is not None:
            found.append(Caution("downgrade", d.type, name, change=down))
    return found


def warnings(diff: PlanDiff) -> list[str]:
    """The cautions as markdown lines."""
    return [caution.line() for caution in cautions(diff)]


def _warning_lines(diff: PlanDiff) -> list[str]:
    found = warnings(diff)
    if not found:
        return []
    return [
        "",
        "> [!CAUTION]",
        "> This change would lose state or go back a version; the engine refuses a protected resource, "
        "a real `pulumi preview` shows what else it would do:",
        *[f"> - {line}" for line in found],
    ]


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
        *_warning_lines(diff),
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
