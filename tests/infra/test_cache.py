"""The cache component under mocks, with each stack's own config slice.

Inputs are literal values, so every assertion is about what the component declared or wired, never
about what the mock answered.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.cache import Cache, CacheArgs, parameter_group_family
from components.cache_settings import CacheSettings
from infra.config import load_stack_file
from stacks.mocks import Registration, is_secret
from tests.infra.checks import assert_children_parented, assert_only_reachable_from
from tests.infra.harness import Captured, run

CACHE_KEY = "arn:aws:kms:eu-west-1:123456789012:key/elasticache"
LOGS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/logs"
CLUSTER_SG = "sg-0cluster"
SUBNETS = ["subnet-0a", "subnet-0b", "subnet-0c"]
# A plain string on purpose: it must still reach the engine as a secret (the provider marks it so).
AUTH_TOKEN = "test-auth-token-0123456789abcdef"

COMPONENT = "ai-agents:cache:Cache"
GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
PARAMETER_GROUP = "aws:elasticache/parameterGroup:ParameterGroup"
SUBNET_GROUP = "aws:elasticache/subnetGroup:SubnetGroup"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def _plan(settings: CacheSettings, stack: str = "staging") -> Captured:
    def program() -> None:
        Cache(
            "cache",
            CacheArgs(
                settings=settings,
                vpc_id="vpc-0test",
                subnet_ids=SUBNETS,
                allowed_security_group_id=CLUSTER_SG,
                auth_token=AUTH_TOKEN,
                kms_key_arn=CACHE_KEY,
                logs_kms_key_arn=LOGS_KEY,
            ),
        )

    return run(program, stack=stack)


@pytest.fixture(scope="module", params=["staging", "production"])
def stack_cache(request: pytest.FixtureRequest) -> tuple[CacheSettings, Captured]:
    settings = load_stack_file(request.param).cache
    return settings, _plan(settings, request.param)


def encrypted_with_auth(group: Registration) -> None:
    """TLS required, AUTH token present and secret, data at rest under our key (raw inputs, secrets wrapped)."""
    inputs = group.inputs
    assert inputs["transitEncryptionEnabled"] is True
    assert inputs["transitEncryptionMode"] == "required"
    assert is_secret(inputs.get("authToken")), "the AUTH token must reach the engine as a secret"
    assert inputs["authToken"]["value"], "the AUTH token is empty"
    assert inputs["atRestEncryptionEnabled"] is True
    assert inputs["kmsKeyId"] == CACHE_KEY


def never_evicts(parameter_group: dict[str, Any]) -> None:
    values = {p["name"]: p["value"] for p in parameter_group["parameters"]}
    assert values.get("maxmemory-policy") == "noeviction", values


def test_tls_auth_and_encryption_at_rest(stack_cache: tuple[CacheSettings, Captured]) -> None:
    _, captured = stack_cache
    group = captured.one(GROUP)
    encrypted_with_auth(group)
    assert captured.inputs(GROUP)["authToken"] == AUTH_TOKEN, "the token is the one AppSecrets gave"
    # SET in the steady state: a rotation begun with ROTATE (old and new token both valid) is completed.
    assert captured.inputs(GROUP)["authTokenUpdateStrategy"] == "SET"


def test_a_rotation_is_started_with_rotate_and_completed_with_set() -> None:
    assert CacheSettings().auth_token_update_strategy == "SET"
    assert (
        CacheSettings.model_validate({"authTokenUpdateStrategy": "ROTATE"}).auth_token_update_strategy
        == "ROTATE"
    )
    with pytest.raises(ValueError, match=r"authTokenUpdateStrategy|auth_token_update_strategy"):
        CacheSettings.model_validate({"authTokenUpdateStrategy": "DELETE"})  # would drop AUTH altogether


def test_replicas_fail_over_across_zones(stack_cache: tuple[CacheSettings, Captured]) -> None:
    settings, captured = stack_cache
    group = captured.inputs(GROUP)
    assert group["numCacheClusters"] == 1 + settings.replicas >= 2
    assert group["automaticFailoverEnabled"] is True
    assert group["multiAzEnabled"] is True


def test_engine_size_snapshots_and_windows_follow_config(stack_cache: tuple[CacheSettings, Captured]) -> None:
    settings, captured = stack_cache
    group = captured.inputs(GROUP)
    assert group["engine"] == settings.engine
    assert group["engineVersion"] == settings.engine_version
    assert group["nodeType"] == settings.node_type
    assert group["port"] == 6379
    assert group["snapshotRetentionLimit"] == settings.snapshot_retention_days
    assert group["snapshotWindow"] == settings.snapshot_window
    assert group["maintenanceWindow"] == settings.maintenance_window
    assert group["applyImmediately"] is False


def test_parameter_group_never_evicts(stack_cache: tuple[CacheSettings, Captured]) -> None:
    settings, captured = stack_cache
    parameters = captured.inputs(PARAMETER_GROUP)
    assert parameters["family"] == parameter_group_family(settings.engine, settings.engine_version)
    never_evicts(parameters)
    assert captured.one(PARAMETER_GROUP).urn in captured.one(GROUP).depends_on


def test_only_the_cluster_reaches_the_broker(stack_cache: tuple[CacheSettings, Captured]) -> None:
    _, captured = stack_cache
    assert_only_reachable_from(
        captured, captured.inputs(GROUP)["securityGroupIds"], source=CLUSTER_SG, port=6379
    )


def test_group_lives_in_its_own_private_subnet_group(stack_cache: tuple[CacheSettings, Captured]) -> None:
    _, captured = stack_cache
    assert captured.inputs(SUBNET_GROUP)["subnetIds"] == SUBNETS
    assert captured.one(SUBNET_GROUP).urn in captured.one(GROUP).depends_on


def test_slow_and_engine_logs_go_to_encrypted_groups(stack_cache: tuple[CacheSettings, Captured]) -> None:
    _, captured = stack_cache
    deliveries = captured.inputs(GROUP)["logDeliveryConfigurations"]
    assert sorted(d["logType"] for d in deliveries) == ["engine-log", "slow-log"]
    assert {d["destinationType"] for d in deliveries} == {"cloudwatch-logs"}
    assert len({d["destination"] for d in deliveries}) == 2, "each log type has its own group"
    log_groups = captured.of_type(LOG_GROUP)
    assert len(log_groups) == 2
    for log_group in log_groups:
        inputs = captured.inputs(LOG_GROUP, log_group.name)
        assert inputs["kmsKeyId"] == LOGS_KEY
        assert inputs["retentionInDays"] == 30
        assert log_group.urn in captured.one(GROUP).depends_on, "deliveries write to these groups"


def test_every_child_is_parented_to_the_component(stack_cache: tuple[CacheSettings, Captured]) -> None:
    _, captured = stack_cache
    assert_children_parented(captured, COMPONENT)


def test_redis_engine_gets_a_redis_family() -> None:
    captured = _plan(CacheSettings(engine="redis", engine_version="7.1"))
    assert captured.inputs(PARAMETER_GROUP)["family"] == "redis7"
    assert captured.inputs(GROUP)["engine"] == "redis"


@pytest.mark.parametrize(
    ("engine", "version", "family"),
    [
        ("valkey", "8.0", "valkey8"),
        ("valkey", "7.2", "valkey7"),
        ("redis", "7.1", "redis7"),
        ("redis", "6.2", "redis6.x"),
    ],
)
def test_parameter_group_family(engine: str, version: str, family: str) -> None:
    assert parameter_group_family(engine, version) == family


def test_redis_older_than_6_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        parameter_group_family("redis", "5.0")


# Mutations: the checks above must fail when a property is broken.


def test_checks_catch_a_plaintext_token_and_plaintext_transit() -> None:
    captured = _plan(load_stack_file("production").cache, "production")
    group = captured.one(GROUP)
    plaintext_token = Registration(**{**vars(group), "inputs": {**group.inputs, "authToken": AUTH_TOKEN}})
    with pytest.raises(AssertionError, match="secret"):
        encrypted_with_auth(plaintext_token)
    preferred = Registration(
        **{**vars(group), "inputs": {**group.inputs, "transitEncryptionMode": "preferred"}}
    )
    with pytest.raises(AssertionError):
        encrypted_with_auth(preferred)


def test_checks_catch_an_evicting_broker_and_an_open_port() -> None:
    captured = _plan(load_stack_file("staging").cache)
    with pytest.raises(AssertionError):
        never_evicts({"parameters": [{"name": "maxmemory-policy", "value": "allkeys-lru"}]})
    rule = next(r for r in captured.registrations if r.name == "cache-ingress")
    rule.inputs["toPort"] = 6380.0
    with pytest.raises(AssertionError):
        assert_only_reachable_from(
            captured, captured.inputs(GROUP)["securityGroupIds"], source=CLUSTER_SG, port=6379
        )


def test_engine_minors_move_only_through_config(stack_cache: tuple[CacheSettings, Captured]) -> None:
    """ElastiCache takes a major.minor version (7 and newer refuse a major alone) and its automatic minor
    upgrades move the group past it; the provider then reads the configured version as a downgrade and
    replaces the group (the broker and its queued tasks). So minors come from the stack file, reviewed in
    the diff; patch releases within the minor still arrive as service updates."""
    settings, captured = stack_cache
    group = captured.inputs(GROUP)
    assert group["autoMinorVersionUpgrade"] is False
    assert group["engineVersion"] == settings.engine_version
    assert settings.engine_version.count(".") == 1
