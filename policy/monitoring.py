"""Monitoring and alarms: production runs the monitoring stack with the service's rules, its data stores
have CloudWatch alarms that page someone, and alarm topics are encrypted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from policy.core import (
    Resource,
    StackResource,
    as_dict,
    by_type,
    dicts,
    get,
    number,
    present,
    resource_policy,
    stack_policy,
    strings,
)
from policy.settings import PolicySettings

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SNS_TOPIC = "aws:sns/topic:Topic"
RDS_INSTANCE = "aws:rds/instance:Instance"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
MONITORING_CHART = "kube-prometheus-stack"

RDS_METRICS = ("CPUUtilization", "FreeStorageSpace", "DatabaseConnections")
CACHE_METRICS = ("DatabaseMemoryUsagePercentage", "Evictions", "EngineCPUUtilization")


def _has_rules(rule: StackResource) -> bool:
    return any(get(group, "rules") for group in dicts(get(rule.props, "spec.groups")))


def _monitoring_installed(
    resources: Sequence[StackResource], settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    if not settings.production:
        return
    charts = [r for r in by_type(resources, HELM_RELEASE) if r.props.get("chart") == MONITORING_CHART]
    if not charts:
        yield (
            f"Production stack installs no {MONITORING_CHART} Helm release (Prometheus, Alertmanager).",
            None,
        )
    if not any(_has_rules(r) for r in by_type(resources, PROMETHEUS_RULE)):
        yield ("Production stack declares no PrometheusRule with alerting rules for the service.", None)
    if not by_type(resources, SERVICE_MONITOR, POD_MONITOR):
        yield (
            "Production stack declares no ServiceMonitor or PodMonitor: nothing scrapes the service.",
            None,
        )


def _paging(alarm: StackResource) -> bool:
    return bool([a for a in strings(alarm.props.get("alarmActions")) if a])


def _alarm_metrics(resources: Sequence[StackResource], namespace: str, dimension: str) -> dict[str, set[str]]:
    """For each metric of ``namespace``: the ``dimension`` values of the paging alarms watching it."""
    found: dict[str, set[str]] = {}
    for alarm in by_type(resources, METRIC_ALARM):
        if alarm.props.get("namespace") != namespace or not _paging(alarm):
            continue
        target = as_dict(alarm.props.get("dimensions")).get(dimension)
        if isinstance(target, str) and target:
            found.setdefault(str(alarm.props.get("metricName")), set()).add(target)
    return found


def _alarms_wired(
    resources: Sequence[StackResource], settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    if not settings.production:
        return
    rds = _alarm_metrics(resources, "AWS/RDS", "DBInstanceIdentifier")
    for instance in by_type(resources, RDS_INSTANCE):
        identifier = instance.props.get("identifier")
        missing = [
            metric
            for metric in RDS_METRICS
            if not (identifier in rds.get(metric, set()) if present(identifier) else rds.get(metric))
        ]
        if missing:
            yield (
                f"RDS instance {instance.name} has no CloudWatch alarm with alarmActions on {', '.join(missing)}.",
                instance.urn,
            )
    cache = _alarm_metrics(resources, "AWS/ElastiCache", "CacheClusterId")
    for group in by_type(resources, REPLICATION_GROUP):
        group_id = group.props.get("replicationGroupId")
        nodes = int(number(group.props.get("numCacheClusters")) or 1)
        missing: list[str] = []
        for metric in CACHE_METRICS:
            watched = cache.get(metric, set())
            if present(group_id):
                watched = {node for node in watched if node.startswith(f"{group_id}-")}
            if len(watched) < nodes:
                missing.append(metric)
        if missing:
            yield (
                f"ElastiCache replication group {group.name} lacks a CloudWatch alarm with alarmActions "
                f"on every node for {', '.join(missing)}.",
                group.urn,
            )


def _alarm_has_actions(r: Resource) -> Iterator[str]:
    if not [a for a in strings(r.props.get("alarmActions")) if a]:
        yield f"CloudWatch alarm {r.name} has no alarmActions: it changes state and tells no one."


def _topic_encrypted(r: Resource) -> Iterator[str]:
    key = r.props.get("kmsMasterKeyId")
    if not present(key):
        yield f"SNS topic {r.name} is not encrypted (kmsMasterKeyId unset)."
    elif str(key).endswith("alias/aws/sns"):
        yield f"SNS topic {r.name} uses the AWS-managed key, which CloudWatch alarms cannot publish with."


POLICIES = [
    stack_policy(
        "monitoring-installed-in-production",
        severity="medium",
        controls=("SOC2 CC7.2",),
        stack_key="monitoring.enabled",
        description="A production stack without Prometheus, the service's alerting rules and its scrape targets fails silently.",
        remediation="set monitoring.enabled: true in Pulumi.production.yaml (components/monitoring.py installs kube-prometheus-stack, the scrape targets (ServiceMonitors, the edge's PodMonitor) and the PrometheusRule).",
        check=_monitoring_installed,
    ),
    stack_policy(
        "data-store-alarms-in-production",
        severity="medium",
        controls=("SOC2 CC7.2",),
        stack_key="monitoring.enabled",
        description="Without CloudWatch alarms on RDS (CPU, free storage, connections) and on every ElastiCache node (memory, evictions, engine CPU), a data store degrades unnoticed.",
        remediation="set monitoring.enabled: true (components/alarms.py declares the alarms with alarmActions on the alarm SNS topic).",
        check=_alarms_wired,
    ),
    resource_policy(
        "cloudwatch-alarm-has-actions",
        severity="medium",
        controls=("SOC2 CC7.2",),
        types=[METRIC_ALARM],
        description="An alarm without actions changes state in the console and pages no one.",
        remediation="set alarmActions (and okActions) to the stack's alarm SNS topic ARN.",
        check=_alarm_has_actions,
    ),
    resource_policy(
        "sns-topic-encrypted",
        severity="medium",
        controls=("SOC2 CC6.1",),
        types=[SNS_TOPIC],
        description="Alarm and alert messages name hosts, tenants and errors; topics must be encrypted with a customer-managed key CloudWatch may use.",
        remediation="set kmsMasterKeyId to a customer-managed KMS key whose policy allows cloudwatch.amazonaws.com kms:GenerateDataKey and kms:Decrypt (components/alarms.py).",
        check=_topic_encrypted,
    ),
]
