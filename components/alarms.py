"""CloudWatch alarms for the managed data stores, sent to one encrypted SNS topic.

RDS: CPU, free storage, connections (and replica lag for read replicas, when there are any).
ElastiCache: memory, evictions and engine CPU on every node of the replication group.

The topic is also Alertmanager's receiver (components/monitoring.py), so one subscription gets every
page. It is encrypted with its own customer-managed key: CloudWatch can publish to an encrypted topic
only when the key policy lets ``cloudwatch.amazonaws.com`` use the key, and neither the AWS-managed
SNS key nor the stack's other keys (components/keys.py) do. Alarm and OK transitions are both sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.monitoring_settings import MonitoringSettings

GIB = 1024**3
PERIOD_SECONDS = 300
# PostgreSQL on RDS: max_connections = LEAST(DBInstanceClassMemory / 9531392, 5000).
RDS_CONNECTION_BYTES = 9_531_392
RDS_MAX_CONNECTIONS = 5000
# Memory per vCPU of the instance families in use; unknown families assume the smallest (m: 4 GiB),
# which alarms earlier rather than later. Burstable classes are listed by size.
GIB_PER_VCPU = {"r": 8, "x": 16, "m": 4, "c": 2}
BURSTABLE_GIB = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}


def vcpus(size: str) -> int:
    if size == "large":
        return 2
    if size == "xlarge":
        return 4
    match = re.fullmatch(r"(\d+)xlarge", size)
    return 4 * int(match.group(1)) if match else 1


def instance_memory_gib(instance_class: str) -> int:
    """Memory of an RDS instance class such as ``db.r6g.large`` (16 GiB) or ``db.t4g.medium`` (4 GiB)."""
    _, family, size = instance_class.split(".")
    if family.startswith("t"):
        return BURSTABLE_GIB.get(size, 2)
    return GIB_PER_VCPU.get(family[0], 4) * vcpus(size)


def max_connections(instance_class: str) -> int:
    """RDS PostgreSQL's default max_connections for the class (the parameter group does not set it)."""
    return min(instance_memory_gib(instance_class) * GIB // RDS_CONNECTION_BYTES, RDS_MAX_CONNECTIONS)


def topic_key_policy(account_id: str, region: str) -> str:
    """The account administers the key through IAM; CloudWatch alarms of this account may encrypt with it."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministersThroughIam",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchAlarmsPublishToTheTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account_id},
                        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:*"},
                    },
                },
            ],
        }
    )


def topic_policy(topic_arn: str, account_id: str, region: str) -> str:
    """CloudWatch alarms of this account may publish; nobody may use the topic without TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountManagesTheTopic",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": [
                        "sns:Publish",
                        "sns:Subscribe",
                        "sns:GetTopicAttributes",
                        "sns:SetTopicAttributes",
                        "sns:ListSubscriptionsByTopic",
                    ],
                    "Resource": topic_arn,
                },
                {
                    "Sid": "CloudWatchAlarmsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account_id},
                        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:*"},
                    },
                },
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch alarm, independent of the resource it watches."""

    role: str  # child name suffix, e.g. "rds-cpu"
    namespace: str
    metric: str
    statistic: str
    comparison: str
    threshold: float
    periods: int
    description: str
    missing: str = "missing"


def rds_alarms(instance_class: str, allocated_storage_gib: int) -> list[AlarmSpec]:
    connections = max_connections(instance_class)
    rds = {"namespace": "AWS/RDS", "comparison": "GreaterThanThreshold"}
    return [
        AlarmSpec(
            **rds,
            role="rds-cpu",
            metric="CPUUtilization",
            statistic="Average",
            threshold=80,
            periods=3,
            description="RDS CPU above 80 % for 15 minutes.",
        ),
        AlarmSpec(
            **{**rds, "comparison": "LessThanThreshold"},
            role="rds-free-storage",
            metric="FreeStorageSpace",
            statistic="Minimum",
            threshold=float(allocated_storage_gib * GIB // 10),
            periods=2,
            description=f"RDS free storage below 10 % of the allocated {allocated_storage_gib} GiB "
            "(storage autoscaling did not keep up, or reached its ceiling).",
        ),
        AlarmSpec(
            **rds,
            role="rds-connections",
            metric="DatabaseConnections",
            statistic="Maximum",
            threshold=float(connections * 8 // 10),
            periods=3,
            description=f"RDS connections above 80 % of max_connections ({connections}) for 15 minutes.",
        ),
    ]


REPLICA_LAG = AlarmSpec(
    role="rds-replica-lag",
    namespace="AWS/RDS",
    metric="ReplicaLag",
    statistic="Maximum",
    comparison="GreaterThanThreshold",
    threshold=60,
    periods=3,
    description="RDS read replica more than 60 s behind the primary for 15 minutes.",
)

CACHE_ALARMS = [
    AlarmSpec(
        role="memory",
        namespace="AWS/ElastiCache",
        metric="DatabaseMemoryUsagePercentage",
        statistic="Maximum",
        comparison="GreaterThanThreshold",
        threshold=80,
        periods=3,
        description="Cache memory above 80 % for 15 minutes; the broker runs noeviction, so a full "
        "cache refuses new jobs.",
    ),
    AlarmSpec(
        role="evictions",
        namespace="AWS/ElastiCache",
        metric="Evictions",
        statistic="Sum",
        comparison="GreaterThanThreshold",
        threshold=0,
        periods=1,
        description="The cache evicted keys: the broker must never evict (queued messages are lost).",
        missing="notBreaching",
    ),
    AlarmSpec(
        role="engine-cpu",
        namespace="AWS/ElastiCache",
        metric="EngineCPUUtilization",
        statistic="Average",
        comparison="GreaterThanThreshold",
        threshold=80,
        periods=3,
        description="Cache engine CPU (its one thread) above 80 % for 15 minutes.",
    ),
]


def cache_node_ids(replication_group_id: pulumi.Input[str], node_count: int) -> list[pulumi.Output[str]]:
    """ElastiCache names a replication group's nodes ``<group id>-001``, ``-002`` ..."""
    group = pulumi.Output.from_input(replication_group_id)
    return [group.apply(lambda g, i=i: f"{g}-{i:03d}") for i in range(1, node_count + 1)]


@dataclass(frozen=True)
class AlarmsArgs:
    settings: MonitoringSettings
    region: str
    database_instance_identifier: pulumi.Input[str]
    database_instance_class: str
    database_allocated_storage_gib: int
    cache_replication_group_id: pulumi.Input[str]
    # Nodes in the replication group (primary + replicas).
    cache_node_count: int
    # Read replicas of the database, if any (a Multi-AZ standby is synchronous and reports no lag).
    database_replica_identifiers: Sequence[pulumi.Input[str]] = ()
    # Deletion waits this long so a mistaken `pulumi destroy` can be undone with CancelKeyDeletion.
    key_deletion_window_days: int = 30
    # Production: the engine refuses to delete or replace the topic's key (`protect`).
    protect: bool = False


class Alarms(pulumi.ComponentResource):
    """An encrypted SNS topic (with the configured e-mail subscription) and the data-store alarms."""

    topic_arn: pulumi.Output[str]
    topic_kms_key_arn: pulumi.Output[str]
    alarm_names: list[pulumi.Output[str]]

    def __init__(self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:alarms:Alarms", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id

        key = aws.kms.Key(
            f"{name}-key",
            description=f"{name}: alarm topic encryption",
            enable_key_rotation=True,
            rotation_period_in_days=365,
            deletion_window_in_days=args.key_deletion_window_days,
            policy=account_id.apply(lambda acct: topic_key_policy(acct, args.region)),
            opts=child.merge(pulumi.ResourceOptions(protect=args.protect)),
        )
        aws.kms.Alias(f"{name}-key", name=f"alias/{name}", target_key_id=key.key_id, opts=child)
        topic = aws.sns.Topic(f"{name}-topic", name=name, kms_master_key_id=key.arn, opts=child)
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account_id).apply(
                lambda v: topic_policy(str(v[0]), str(v[1]), args.region)
            ),
            opts=child,
        )
        if args.settings.alarm_email:
            # AWS mails a confirmation link; the subscription is pending until someone clicks it.
            aws.sns.TopicSubscription(
                f"{name}-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.settings.alarm_email,
                opts=child,
            )

        self.alarm_names = []
        self._topic = topic
        db = args.database_instance_identifier
        for spec in rds_alarms(args.database_instance_class, args.database_allocated_storage_gib):
            self._alarm(spec, spec.role, {"DBInstanceIdentifier": db})
        for index, replica in enumerate(args.database_replica_identifiers):
            self._alarm(REPLICA_LAG, f"{REPLICA_LAG.role}-{index}", {"DBInstanceIdentifier": replica})
        for index, node in enumerate(cache_node_ids(args.cache_replication_group_id, args.cache_node_count)):
            for spec in CACHE_ALARMS:
                self._alarm(spec, f"cache-{spec.role}-{index + 1:03d}", {"CacheClusterId": node})

        self.topic_arn = topic.arn
        self.topic_kms_key_arn = key.arn
        self.register_outputs(
            {
                "topic_arn": self.topic_arn,
                "topic_kms_key_arn": self.topic_kms_key_arn,
                "alarm_names": self.alarm_names,
            }
        )

    def _alarm(self, spec: AlarmSpec, role: str, dimensions: dict[str, pulumi.Input[str]]) -> None:
        target = next(iter(dimensions.values()))
        alarm = aws.cloudwatch.MetricAlarm(
            f"{self._name}-{role}",
            name=f"{self._name}-{role}",
            alarm_description=pulumi.Output.concat(spec.description, " (", target, ")"),
            namespace=spec.namespace,
            metric_name=spec.metric,
            statistic=spec.statistic,
            dimensions=dimensions,
            period=PERIOD_SECONDS,
            evaluation_periods=spec.periods,
            datapoints_to_alarm=spec.periods,
            comparison_operator=spec.comparison,
            threshold=spec.threshold,
            treat_missing_data=spec.missing,
            alarm_actions=[self._topic.arn],
            ok_actions=[self._topic.arn],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.alarm_names.append(alarm.name)
