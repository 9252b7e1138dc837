"""CloudWatch alarms under mocks: every required metric on the database and on every cache node,
thresholds derived from the stack config, all wired to one KMS-encrypted topic CloudWatch may use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.alarms import Alarms, AlarmsArgs, instance_memory_gib, max_connections
from infra.config import StackConfig
from tests.infra.harness import Captured, run, run_stack
from tests.infra.k8s_fixtures import REGION, stack_config

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
KEY = "aws:kms/key:Key"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
DB = "ai-agents-test-db"
GROUP = "ai-agents-test-cache"


def compose(config: StackConfig, replicas: tuple[str, ...] = ()) -> Captured:
    def program() -> None:
        Alarms(
            "alarms",
            AlarmsArgs(
                settings=config.monitoring,
                region=REGION,
                database_instance_identifier=DB,
                database_instance_class=config.database.instance_class,
                database_allocated_storage_gib=config.database.allocated_storage_gib,
                cache_replication_group_id=GROUP,
                cache_node_count=1 + config.cache.replicas,
                database_replica_identifiers=replicas,
            ),
        )

    return run(program, stack=config.environment)


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    config = stack_config(str(request.param))
    return config, compose(config)


def alarms(captured: Captured) -> list[dict[str, Any]]:
    return [captured.inputs(ALARM, r.name) for r in captured.of_type(ALARM)]


def metrics_on(captured: Captured, dimension: str, value: str) -> dict[str, dict[str, Any]]:
    return {a["metricName"]: a for a in alarms(captured) if a["dimensions"].get(dimension) == value}


def test_database_has_cpu_storage_and_connection_alarms(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    found = metrics_on(captured, "DBInstanceIdentifier", DB)
    assert set(found) == {"CPUUtilization", "FreeStorageSpace", "DatabaseConnections"}
    assert all(a["namespace"] == "AWS/RDS" for a in found.values())
    storage = found["FreeStorageSpace"]
    assert storage["comparisonOperator"] == "LessThanThreshold"
    assert storage["threshold"] == config.database.allocated_storage_gib * 1024**3 // 10
    connections = found["DatabaseConnections"]
    assert connections["threshold"] == max_connections(config.database.instance_class) * 8 // 10
    assert found["CPUUtilization"]["threshold"] == 80


def test_every_cache_node_has_memory_eviction_and_cpu_alarms(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    nodes = [f"{GROUP}-{i:03d}" for i in range(1, config.cache.replicas + 2)]
    for node in nodes:
        found = metrics_on(captured, "CacheClusterId", node)
        assert set(found) == {"DatabaseMemoryUsagePercentage", "Evictions", "EngineCPUUtilization"}, node
        assert all(a["namespace"] == "AWS/ElastiCache" for a in found.values())
        # The broker runs noeviction: a single eviction loses messages.
        assert found["Evictions"]["threshold"] == 0
        assert found["Evictions"]["treatMissingData"] == "notBreaching"
    assert len(alarms(captured)) == 3 + 3 * len(nodes)


def test_every_alarm_and_recovery_goes_to_the_topic(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    topic = captured.inputs(TOPIC)
    topic_arn = f"arn:aws:sns:{REGION}:123456789012:{topic['name']}"
    for alarm in alarms(captured):
        assert alarm["alarmActions"] == [topic_arn], alarm["name"]
        assert alarm["okActions"] == [topic_arn], alarm["name"]
        assert alarm["name"].startswith("alarms-")


def test_topic_is_encrypted_with_a_key_cloudwatch_may_use(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    topic = captured.inputs(TOPIC)
    key = captured.inputs(KEY)
    # The alarms' own key (the one whose policy admits CloudWatch, below), not any key of the account.
    assert topic["kmsMasterKeyId"] == captured.outputs(KEY)["arn"]
    assert topic["kmsMasterKeyId"].startswith(f"arn:aws:kms:{REGION}:123456789012:key/")
    assert key["enableKeyRotation"] is True
    statements = {s["Sid"]: s for s in json.loads(key["policy"])["Statement"]}
    cloudwatch = statements["CloudWatchAlarmsPublishToTheTopic"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_topic_policy_admits_cloudwatch_and_refuses_plaintext(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    policy = json.loads(captured.inputs(TOPIC_POLICY)["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["CloudWatchAlarmsPublish"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    deny = statements["DenyInsecureTransport"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_email_subscription_only_when_configured() -> None:
    production = stack_config("production")
    assert production.monitoring.alarm_email
    subscription = compose(production).inputs(SUBSCRIPTION)
    assert subscription == {
        **subscription,
        "protocol": "email",
        "endpoint": production.monitoring.alarm_email,
    }
    staging = stack_config("staging")
    assert staging.monitoring.alarm_email is None
    assert compose(staging).of_type(SUBSCRIPTION) == []


def test_read_replicas_get_a_lag_alarm() -> None:
    captured = compose(stack_config("production"), replicas=("ai-agents-test-db-replica",))
    found = metrics_on(captured, "DBInstanceIdentifier", "ai-agents-test-db-replica")
    assert set(found) == {"ReplicaLag"}
    assert found["ReplicaLag"]["threshold"] == 60


@pytest.mark.parametrize(
    ("instance_class", "memory_gib", "connections"),
    [
        ("db.t4g.medium", 4, 450),
        ("db.r6g.large", 16, 1802),
        ("db.m6i.xlarge", 16, 1802),
        ("db.r6g.16xlarge", 512, 5000),
    ],
)
def test_max_connections_follows_the_instance_memory(
    instance_class: str, memory_gib: int, connections: int
) -> None:
    assert instance_memory_gib(instance_class) == memory_gib
    assert max_connections(instance_class) == connections


def test_whole_program_wires_alarms_to_the_real_data_stores_and_alertmanager_to_the_topic() -> None:
    captured = run_stack("production")
    config = stack_config("production")
    database = captured.one("aws:rds/instance:Instance")
    identifier = captured.inputs("aws:rds/instance:Instance")["identifier"]
    assert set(metrics_on(captured, "DBInstanceIdentifier", identifier)) == {
        "CPUUtilization",
        "FreeStorageSpace",
        "DatabaseConnections",
    }, database.name
    group = captured.one("aws:elasticache/replicationGroup:ReplicationGroup")
    nodes = {
        a["dimensions"]["CacheClusterId"] for a in alarms(captured) if a["namespace"] == "AWS/ElastiCache"
    }
    assert len(nodes) == 1 + config.cache.replicas
    assert all(node.startswith(group.name) for node in nodes), nodes
    topic_name = captured.inputs(TOPIC)["name"]
    release = captured.inputs(
        "kubernetes:helm.sh/v3:Release", "ai-agents-production-monitoring-kube-prometheus-stack"
    )
    (receiver,) = [
        r for r in release["values"]["alertmanager"]["config"]["receivers"] if r.get("sns_configs")
    ]
    assert receiver["sns_configs"][0]["topic_arn"].endswith(f":{topic_name}")
