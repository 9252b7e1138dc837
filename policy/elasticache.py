"""ElastiCache (Redis/Valkey, the Celery broker): TLS + AUTH, encrypted, replicated, no eviction."""

from __future__ import annotations

from collections.abc import Iterator

from policy.core import Resource, dicts, is_true, number, present, resource_policy, strings

REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_CLUSTER = "aws:elasticache/cluster:Cluster"
PARAMETER_GROUP = "aws:elasticache/parameterGroup:ParameterGroup"
NON_EVICTING = "noeviction"


def _transit(r: Resource) -> Iterator[str]:
    if not is_true(r.props.get("transitEncryptionEnabled")):
        yield f"ElastiCache {r.name} accepts plaintext connections (transitEncryptionEnabled is not true)."
    elif str(r.props.get("transitEncryptionMode") or "required") != "required":
        yield f"ElastiCache {r.name} has transitEncryptionMode={r.props.get('transitEncryptionMode')}, which still accepts plaintext."


def _at_rest(r: Resource) -> Iterator[str]:
    if not is_true(r.props.get("atRestEncryptionEnabled")):
        yield f"ElastiCache {r.name} does not encrypt data at rest (atRestEncryptionEnabled)."
    elif not present(r.props.get("kmsKeyId")):
        yield f"ElastiCache {r.name} encrypts at rest with the AWS-owned key instead of a customer-managed KMS key."


def _auth(r: Resource) -> Iterator[str]:
    if not present(r.props.get("authToken")) and not strings(r.props.get("userGroupIds")):
        yield f"ElastiCache {r.name} requires no AUTH token or RBAC user group: anyone on the network can connect."


def _failover(r: Resource) -> Iterator[str]:
    if not is_true(r.props.get("automaticFailoverEnabled")):
        yield f"ElastiCache {r.name} has no automatic failover."
    if not is_true(r.props.get("multiAzEnabled")):
        yield f"ElastiCache {r.name} does not spread its nodes over availability zones (multiAzEnabled)."


def _replicas(r: Resource) -> Iterator[str]:
    minimum = r.settings.elasticache_min_replicas
    clusters = number(r.props.get("numCacheClusters"))
    per_group = number(r.props.get("replicasPerNodeGroup"))
    replicas = per_group if per_group is not None else (clusters - 1 if clusters is not None else 0)
    if replicas < minimum:
        yield f"ElastiCache {r.name} has {replicas:g} replica(s); at least {minimum} are required."


def _no_eviction(r: Resource) -> Iterator[str]:
    if not r.settings.elasticache_is_broker:
        return
    if r.type == REPLICATION_GROUP:
        group = str(r.props.get("parameterGroupName") or "")
        if not group or group.startswith("default."):
            yield f"ElastiCache {r.name} uses a default parameter group, whose maxmemory-policy evicts keys (queued tasks)."
        return
    values = {str(p.get("name")): str(p.get("value")) for p in dicts(r.props.get("parameters"))}
    policy = values.get("maxmemory-policy", "volatile-lru (default)")
    if policy != NON_EVICTING:
        yield f"ElastiCache parameter group {r.name} has maxmemory-policy={policy}: a full broker silently drops tasks."


def _snapshots(r: Resource) -> Iterator[str]:
    days = number(r.props.get("snapshotRetentionLimit")) or 0
    minimum = r.settings.elasticache_min_snapshot_retention_days
    if days < minimum:
        yield f"ElastiCache {r.name} keeps snapshots {days:g} day(s); the minimum on this stack is {minimum}."


def _replication_group_only(r: Resource) -> Iterator[str]:
    engine = str(r.props.get("engine") or "")
    if engine in {"redis", "valkey"} and not present(r.props.get("replicationGroupId")):
        yield f"ElastiCache cluster {r.name} is a standalone {engine} node: no TLS+AUTH+failover guarantees."


POLICIES = [
    resource_policy(
        "elasticache-transit-encryption",
        severity="high",
        controls=("SOC2 CC6.7",),
        types=[REPLICATION_GROUP],
        description="Without TLS, broker traffic (task payloads, AUTH token) crosses the VPC in clear text.",
        remediation="set transitEncryptionEnabled=true and transitEncryptionMode=required.",
        check=_transit,
    ),
    resource_policy(
        "elasticache-at-rest-encryption",
        severity="medium",
        controls=(
            "PCI-DSS 3.5.1",
            "SOC2 CC6.1",
        ),
        types=[REPLICATION_GROUP],
        description="Snapshots and swap of an unencrypted cache expose task payloads.",
        remediation="set atRestEncryptionEnabled=true and kmsKeyId to the stack's ElastiCache KMS key.",
        check=_at_rest,
    ),
    resource_policy(
        "elasticache-auth-token",
        severity="critical",
        controls=("SOC2 CC6.1",),
        types=[REPLICATION_GROUP],
        description="A cache without AUTH lets any pod or host in the VPC read and enqueue tasks.",
        remediation="set authToken from a Pulumi secret (or userGroupIds for RBAC) with transit encryption on.",
        check=_auth,
    ),
    resource_policy(
        "elasticache-automatic-failover",
        severity="medium",
        controls=("SOC2 A1.2",),
        types=[REPLICATION_GROUP],
        description="Without automatic failover and Multi-AZ, losing the primary node or its AZ stops all work.",
        remediation="set automaticFailoverEnabled=true and multiAzEnabled=true (needs at least one replica).",
        check=_failover,
    ),
    resource_policy(
        "elasticache-replicas",
        severity="medium",
        controls=("SOC2 A1.2",),
        stack_key="cache.replicas",
        types=[REPLICATION_GROUP],
        description="A replication group with no replica has nothing to fail over to.",
        remediation="set numCacheClusters to at least 1 + elasticacheMinReplicas (or replicasPerNodeGroup).",
        check=_replicas,
    ),
    resource_policy(
        "elasticache-broker-no-eviction",
        severity="medium",
        controls=("SOC2 A1.2",),
        types=[REPLICATION_GROUP, PARAMETER_GROUP],
        description="A broker that evicts keys under memory pressure loses queued tasks without an error.",
        remediation="attach a custom parameter group that sets maxmemory-policy=noeviction.",
        check=_no_eviction,
    ),
    resource_policy(
        "elasticache-snapshot-retention",
        severity="medium",
        controls=("SOC2 A1.2",),
        stack_key="cache.snapshotRetentionDays",
        types=[REPLICATION_GROUP],
        description="Without snapshots a broker or cache failure cannot be recovered to a recent point.",
        remediation="set snapshotRetentionLimit to at least elasticacheMinSnapshotRetentionDays.",
        check=_snapshots,
    ),
    resource_policy(
        "elasticache-replication-group-only",
        severity="medium",
        controls=("SOC2 A1.2",),
        types=[CACHE_CLUSTER],
        description="A standalone Redis/Valkey cache cluster has no replica, failover or AUTH+TLS enforcement.",
        remediation="declare an aws.elasticache.ReplicationGroup instead of a standalone Cluster.",
        check=_replication_group_only,
    ),
]
