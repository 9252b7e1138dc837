"""The database component under mocks, with each stack's own config slice.

Inputs are literal values, so every assertion is about what the component declared or wired, never
about what the mock answered.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.database import PARAMETERS, Database, DatabaseArgs, first_secret_arn, parameter_group_family
from components.database_settings import DatabaseSettings
from infra.config import load_stack_file
from stacks.mocks import ACCOUNT_ID
from tests.infra.checks import assert_children_parented, assert_only_reachable_from
from tests.infra.harness import Captured, resolve, run

RDS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/rds"
SECRETS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/secrets"
LOGS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/logs"
CLUSTER_SG = "sg-0cluster"
SUBNETS = ["subnet-0a", "subnet-0b", "subnet-0c"]

COMPONENT = "ai-agents:database:Database"
INSTANCE = "aws:rds/instance:Instance"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def _plan(settings: DatabaseSettings, stack: str) -> tuple[Captured, dict[str, Any]]:
    """Declare the component; also return its resolved outputs."""
    outputs: dict[str, pulumi.Output[Any]] = {}

    def program() -> None:
        db = Database(
            "db",
            DatabaseArgs(
                settings=settings,
                vpc_id="vpc-0test",
                subnet_ids=SUBNETS,
                allowed_security_group_id=CLUSTER_SG,
                kms_key_arn=RDS_KEY,
                secrets_kms_key_arn=SECRETS_KEY,
                logs_kms_key_arn=LOGS_KEY,
            ),
        )
        outputs.update(master_secret_arn=db.master_secret_arn, security_group_id=db.security_group_id)

    captured = run(program, stack=stack)
    return captured, {key: resolve(value) for key, value in outputs.items()}


@pytest.fixture(scope="module", params=["staging", "production"])
def stack_db(request: pytest.FixtureRequest) -> tuple[DatabaseSettings, Captured, dict[str, Any]]:
    settings = load_stack_file(request.param).database
    captured, outputs = _plan(settings, request.param)
    return settings, captured, outputs


def instance_is_private_and_encrypted(instance: dict[str, Any]) -> None:
    """The properties that keep the data unreachable from outside and unreadable without our keys."""
    assert instance["publiclyAccessible"] is False
    assert instance["storageEncrypted"] is True
    assert instance["kmsKeyId"] == RDS_KEY
    assert instance["performanceInsightsKmsKeyId"] == RDS_KEY
    assert instance["manageMasterUserPassword"] is True
    assert instance["masterUserSecretKmsKeyId"] == SECRETS_KEY
    assert "password" not in instance and "passwordWo" not in instance
    assert instance["iamDatabaseAuthenticationEnabled"] is True


def parameters_force_tls(group: dict[str, Any]) -> None:
    values = {p["name"]: p["value"] for p in group["parameters"]}
    assert values.get("rds.force_ssl") == "1", values


def test_instance_is_private_encrypted_and_password_managed(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, _ = stack_db
    instance_is_private_and_encrypted(captured.inputs(INSTANCE))


def test_engine_size_and_storage_come_from_config(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    settings, captured, _ = stack_db
    instance = captured.inputs(INSTANCE)
    assert instance["engine"] == "postgres"
    assert instance["engineVersion"] == settings.engine_version
    assert instance["instanceClass"] == settings.instance_class
    assert instance["dbName"] == settings.database_name
    assert instance["storageType"] == "gp3"
    assert instance["allocatedStorage"] == settings.allocated_storage_gib
    assert instance["maxAllocatedStorage"] == settings.max_allocated_storage_gib
    assert instance["multiAz"] is settings.multi_az


def test_production_is_multi_az_protected_and_leaves_a_final_snapshot() -> None:
    captured, _ = _plan(load_stack_file("production").database, "production")
    instance = captured.inputs(INSTANCE)
    assert instance["multiAz"] is True
    assert instance["deletionProtection"] is True
    assert instance["skipFinalSnapshot"] is False
    # The final snapshot's name carries a suffix drawn once per stack life (see the test below).
    assert str(instance["finalSnapshotIdentifier"]).startswith("db-final-")
    assert instance["deleteAutomatedBackups"] is False
    assert captured.one(INSTANCE).protect is True


def test_unprotected_staging_can_be_torn_down() -> None:
    captured, _ = _plan(load_stack_file("staging").database, "staging")
    instance = captured.inputs(INSTANCE)
    assert instance["deletionProtection"] is False
    assert instance["skipFinalSnapshot"] is True
    assert captured.one(INSTANCE).protect is False


def test_backups_and_windows_follow_config(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    settings, captured, _ = stack_db
    instance = captured.inputs(INSTANCE)
    assert instance["backupRetentionPeriod"] == settings.backup_retention_days >= 7
    assert instance["backupWindow"] == settings.backup_window
    assert instance["maintenanceWindow"] == settings.maintenance_window
    assert instance["copyTagsToSnapshot"] is True
    assert instance["autoMinorVersionUpgrade"] is True
    assert instance["applyImmediately"] is False
    assert instance["caCertIdentifier"] == "rds-ca-rsa2048-g1"


def test_only_the_cluster_reaches_postgres(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, outputs = stack_db
    group_ids = captured.inputs(INSTANCE)["vpcSecurityGroupIds"]
    assert_only_reachable_from(captured, group_ids, source=CLUSTER_SG, port=5432)
    assert group_ids == [outputs["security_group_id"]], "the exposed security group is the instance's"


def test_instance_lives_in_its_own_private_subnet_group(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, _ = stack_db
    subnet_group = captured.one(SUBNET_GROUP)
    assert captured.inputs(SUBNET_GROUP)["subnetIds"] == SUBNETS
    assert subnet_group.urn in captured.one(INSTANCE).depends_on
    assert captured.inputs(INSTANCE)["dbSubnetGroupName"]


def test_parameter_group_forces_tls_and_logs(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, _ = stack_db
    group = captured.inputs(PARAMETER_GROUP)
    assert group["family"] == "postgres17"
    parameters_force_tls(group)
    values = {p["name"]: p for p in group["parameters"]}
    for name in ("log_min_duration_statement", "log_connections", "log_disconnections", "log_lock_waits"):
        assert name in values, f"{name} is not set"
    # RDS rejects a static parameter with apply_method=immediate.
    assert values["shared_preload_libraries"]["applyMethod"] == "pending-reboot"
    assert values["rds.force_ssl"]["applyMethod"] == "immediate"
    assert captured.one(PARAMETER_GROUP).urn in captured.one(INSTANCE).depends_on


def test_enhanced_monitoring_performance_insights_and_log_exports(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    settings, captured, _ = stack_db
    instance = captured.inputs(INSTANCE)
    assert instance["performanceInsightsEnabled"] is True
    assert instance["performanceInsightsRetentionPeriod"] == settings.performance_insights_retention_days
    assert instance["monitoringInterval"] == settings.monitoring_interval_seconds
    assert sorted(instance["enabledCloudwatchLogsExports"]) == ["postgresql", "upgrade"]
    role = captured.one(ROLE)
    assert role.urn in captured.one(INSTANCE).depends_on, "monitoringRoleArn is the monitoring role's"
    trust = json.loads(captured.inputs(ROLE)["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "monitoring.rds.amazonaws.com"}]
    # Confused deputy: RDS assumes it only for this account's instances.
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    attachment = captured.inputs(ATTACHMENT)
    assert attachment["policyArn"].endswith(":policy/service-role/AmazonRDSEnhancedMonitoringRole")
    assert role.urn in captured.one(ATTACHMENT).depends_on


def test_exported_logs_land_in_encrypted_groups_created_first(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, _ = stack_db
    instance = captured.one(INSTANCE)
    identifier = captured.inputs(INSTANCE)["identifier"]
    groups = {captured.inputs(LOG_GROUP, g.name)["name"]: g for g in captured.of_type(LOG_GROUP)}
    assert sorted(groups) == [f"/aws/rds/instance/{identifier}/{log}" for log in ("postgresql", "upgrade")]
    for name, group in groups.items():
        inputs = captured.inputs(LOG_GROUP, group.name)
        assert inputs["kmsKeyId"] == LOGS_KEY, name
        assert inputs["retentionInDays"] == 30, name
        assert group.urn in instance.depends_on, f"{name} must exist before RDS exports to it"


def test_master_secret_arn_is_the_rds_managed_secret(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    _, _, outputs = stack_db
    assert outputs["master_secret_arn"].startswith("arn:aws:secretsmanager:")
    secret = aws.rds.outputs.InstanceMasterUserSecret(
        secret_arn="arn:aws:secretsmanager:x", secret_status="active"
    )
    assert first_secret_arn([secret]) == "arn:aws:secretsmanager:x"
    with pytest.raises(ValueError, match="no managed master user secret"):
        first_secret_arn([])


def test_every_child_is_parented_to_the_component(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, _ = stack_db
    assert_children_parented(captured, COMPONENT)


def test_parameter_family_follows_the_major_version() -> None:
    assert parameter_group_family("17.6") == "postgres17"
    assert parameter_group_family("17") == "postgres17"
    assert {p.name for p in PARAMETERS} >= {"rds.force_ssl", "log_connections"}


# Mutations: the checks above must fail when a property is broken.


def test_checks_catch_a_public_or_unencrypted_instance() -> None:
    captured, _ = _plan(load_stack_file("production").database, "production")
    for key, broken in [
        ("publiclyAccessible", True),
        ("storageEncrypted", False),
        ("kmsKeyId", "alias/aws/rds"),
        ("manageMasterUserPassword", False),
    ]:
        instance = {**captured.inputs(INSTANCE), key: broken}
        with pytest.raises(AssertionError):
            instance_is_private_and_encrypted(instance)


def test_checks_catch_tls_off_and_a_widened_security_group() -> None:
    captured, _ = _plan(load_stack_file("staging").database, "staging")
    group = captured.inputs(PARAMETER_GROUP)
    no_tls = {
        **group,
        "parameters": [
            {**p, "value": "0"} if p["name"] == "rds.force_ssl" else p for p in group["parameters"]
        ],
    }
    with pytest.raises(AssertionError):
        parameters_force_tls(no_tls)

    rule = next(r for r in captured.registrations if r.name == "db-ingress")
    rule.inputs["cidrIpv4"] = "10.0.0.0/8"
    with pytest.raises(AssertionError, match="cidrIpv4"):
        assert_only_reachable_from(
            captured, captured.inputs(INSTANCE)["vpcSecurityGroupIds"], source=CLUSTER_SG, port=5432
        )


def test_engine_version_is_major_only_so_minor_upgrades_are_not_drift(
    stack_db: tuple[DatabaseSettings, Captured, dict[str, Any]],
) -> None:
    """RDS moves the instance to the next minor itself (autoMinorVersionUpgrade); a pinned minor would then
    be a downgrade the next `up` asks for and RDS refuses. The provider ignores a minor under a major-only
    version (it reports the running one as engineVersionActual)."""
    _, captured, _ = stack_db
    instance = captured.inputs(INSTANCE)
    assert instance["autoMinorVersionUpgrade"] is True
    assert "." not in instance["engineVersion"], instance["engineVersion"]
    assert instance["allowMajorVersionUpgrade"] is False
    with pytest.raises(ValueError, match="major version only"):
        DatabaseSettings(engine_version="17.6")


def test_final_snapshot_name_survives_a_recreated_stack() -> None:
    """A fixed final-snapshot name collides with the snapshot the previous life of the stack left; the
    suffix is drawn once (a random id without keepers) and stays for the life of the instance."""
    captured, _ = _plan(load_stack_file("production").database, "production")
    suffix = captured.one("random:index/randomId:RandomId")
    assert suffix.inputs.get("keepers") is None
    assert suffix.parent == captured.one(COMPONENT).urn
    name = captured.inputs(INSTANCE)["finalSnapshotIdentifier"]
    assert name == f"db-final-{suffix.outputs['hex']}"
