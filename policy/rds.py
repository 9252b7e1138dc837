"""RDS PostgreSQL: private, encrypted with our key, highly available, recoverable, TLS-only."""

from __future__ import annotations

from collections.abc import Iterator

from policy.core import (
    SECRET,
    Resource,
    dicts,
    get,
    is_false,
    is_true,
    number,
    present,
    resource_policy,
    strings,
)

INSTANCE = "aws:rds/instance:Instance"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"


def _not_public(r: Resource) -> Iterator[str]:
    if is_true(r.props.get("publiclyAccessible")):
        yield f"RDS instance {r.name} has publiclyAccessible=true: it gets a public DNS name and IP."


def _encrypted_with_cmk(r: Resource) -> Iterator[str]:
    if not is_true(r.props.get("storageEncrypted")):
        yield f"RDS instance {r.name} does not set storageEncrypted=true."
    key = r.props.get("kmsKeyId")
    if not present(key) or str(key).endswith("alias/aws/rds"):
        yield f"RDS instance {r.name} is not encrypted with a customer-managed KMS key (kmsKeyId)."


def _multi_az(r: Resource) -> Iterator[str]:
    required = r.settings.production or r.settings.rds_require_multi_az
    if required and not is_true(r.props.get("multiAz")):
        where = "a production stack" if r.settings.production else "this stack (rdsRequireMultiAz)"
        yield f"RDS instance {r.name} is single-AZ in {where}: an AZ outage takes the database down."


def _backup_retention(r: Resource) -> Iterator[str]:
    days = number(r.props.get("backupRetentionPeriod")) or 0
    minimum = r.settings.rds_min_backup_retention_days
    if days < minimum:
        yield f"RDS instance {r.name} keeps backups {days:g} day(s); the minimum on this stack is {minimum}."


def _deletion_protection(r: Resource) -> Iterator[str]:
    if r.settings.production and not is_true(r.props.get("deletionProtection")):
        yield f"RDS instance {r.name} has no deletion protection in production."


def _final_snapshot(r: Resource) -> Iterator[str]:
    if r.settings.production and is_true(r.props.get("skipFinalSnapshot")):
        yield f"RDS instance {r.name} skips the final snapshot in production: deleting it loses the data."


def _no_plaintext_password(r: Resource) -> Iterator[str]:
    if is_true(r.props.get("manageMasterUserPassword")):
        return
    password = r.props.get("password")
    if present(password) and password != SECRET:
        yield f"RDS instance {r.name} has a plaintext master password in the program's inputs."
    elif not present(password) and not present(r.props.get("passwordWo")):
        yield f"RDS instance {r.name} neither lets RDS manage the master password nor takes it from a secret."


def _iam_auth(r: Resource) -> Iterator[str]:
    if not is_true(r.props.get("iamDatabaseAuthenticationEnabled")):
        yield f"RDS instance {r.name} does not enable IAM database authentication."


def _force_ssl(r: Resource) -> Iterator[str]:
    if r.type == INSTANCE:
        group = r.props.get("parameterGroupName")
        if not present(group) or str(group).startswith("default."):
            yield f"RDS instance {r.name} uses the default parameter group, where rds.force_ssl is off."
        return
    if not str(r.props.get("family") or "").startswith("postgres"):
        return
    values = {str(p.get("name")): str(p.get("value")) for p in dicts(r.props.get("parameters"))}
    if values.get("rds.force_ssl") not in {"1", "1.0", "true"}:
        yield f"RDS parameter group {r.name} does not set rds.force_ssl=1: clients may connect without TLS."


def _auto_minor_upgrade(r: Resource) -> Iterator[str]:
    if is_false(r.props.get("autoMinorVersionUpgrade")):
        yield f"RDS instance {r.name} turns off automatic minor version upgrades (security patches)."


def _not_default_network(r: Resource) -> Iterator[str]:
    subnet_group = r.props.get("dbSubnetGroupName")
    if not present(subnet_group) or str(subnet_group).lower() == "default":
        yield f"RDS instance {r.name} has no DB subnet group, so it lands in the default VPC."
    if not strings(r.props.get("vpcSecurityGroupIds")):
        yield f"RDS instance {r.name} has no vpcSecurityGroupIds, so it gets the VPC's default security group."


def _performance_insights_cmk(r: Resource) -> Iterator[str]:
    if is_true(r.props.get("performanceInsightsEnabled")) and not present(
        get(r.props, "performanceInsightsKmsKeyId")
    ):
        yield f"RDS instance {r.name} stores Performance Insights data without a customer-managed KMS key."


POLICIES = [
    resource_policy(
        "rds-not-publicly-accessible",
        severity="critical",
        controls=(
            "CIS-AWS 2.3.3",
            "PCI-DSS 1.4.4",
            "SOC2 CC6.6",
        ),
        types=[INSTANCE],
        description="A publicly accessible RDS instance can be reached from the internet.",
        remediation="set publiclyAccessible=false and reach the database only from inside the VPC.",
        check=_not_public,
    ),
    resource_policy(
        "rds-storage-encrypted-cmk",
        severity="high",
        controls=(
            "CIS-AWS 2.3.1",
            "PCI-DSS 3.5.1",
            "SOC2 CC6.1",
        ),
        types=[INSTANCE],
        description="RDS storage, snapshots and replicas must be encrypted with a key we control and audit.",
        remediation="set storageEncrypted=true and kmsKeyId to the stack's RDS customer-managed KMS key ARN.",
        check=_encrypted_with_cmk,
    ),
    resource_policy(
        "rds-multi-az",
        severity="medium",
        controls=("SOC2 A1.2",),
        stack_key="database.multiAz",
        types=[INSTANCE],
        description="A single-AZ database is a single point of failure (always required in production).",
        remediation="set multiAz=true (database.multiAz in the stack config).",
        check=_multi_az,
    ),
    resource_policy(
        "rds-backup-retention",
        severity="high",
        controls=("SOC2 A1.2",),
        stack_key="database.backupRetentionDays",
        types=[INSTANCE],
        description="Too short a backup retention makes point-in-time recovery impossible after a late discovery.",
        remediation="set backupRetentionPeriod to at least rdsMinBackupRetentionDays (7 by default).",
        check=_backup_retention,
    ),
    resource_policy(
        "rds-deletion-protection",
        severity="high",
        controls=("SOC2 A1.2",),
        stack_key="database.deletionProtection",
        types=[INSTANCE],
        description="Without deletion protection one mistaken `pulumi destroy` or replacement drops the production database.",
        remediation="set deletionProtection=true (database.deletionProtection in the production stack config).",
        check=_deletion_protection,
    ),
    resource_policy(
        "rds-final-snapshot",
        severity="high",
        controls=("SOC2 A1.2",),
        types=[INSTANCE],
        description="Skipping the final snapshot in production makes a deletion unrecoverable.",
        remediation="set skipFinalSnapshot=false and a finalSnapshotIdentifier.",
        check=_final_snapshot,
    ),
    resource_policy(
        "rds-no-plaintext-password",
        severity="critical",
        controls=(
            "PCI-DSS 8.6.2",
            "SOC2 CC6.1",
        ),
        types=[INSTANCE],
        description="A master password in the program ends up in state and in Git history.",
        remediation="set manageMasterUserPassword=true (RDS keeps it in Secrets Manager), or pass it as a Pulumi secret.",
        check=_no_plaintext_password,
    ),
    resource_policy(
        "rds-iam-authentication",
        severity="medium",
        controls=("SOC2 CC6.1",),
        types=[INSTANCE],
        description="Without IAM database authentication every client needs a long-lived database password.",
        remediation="set iamDatabaseAuthenticationEnabled=true.",
        check=_iam_auth,
    ),
    resource_policy(
        "rds-force-ssl",
        severity="high",
        controls=("SOC2 CC6.7",),
        types=[INSTANCE, PARAMETER_GROUP],
        description="Unless rds.force_ssl=1, PostgreSQL accepts unencrypted client connections.",
        remediation="attach a custom parameter group (parameterGroupName) whose parameters set rds.force_ssl=1.",
        check=_force_ssl,
    ),
    resource_policy(
        "rds-auto-minor-version-upgrade",
        severity="medium",
        controls=(
            "CIS-AWS 2.3.2",
            "PCI-DSS 6.3.3",
            "SOC2 CC7.1",
        ),
        types=[INSTANCE],
        description="Turning off automatic minor upgrades leaves known PostgreSQL vulnerabilities unpatched.",
        remediation="remove autoMinorVersionUpgrade=false (the default is true).",
        check=_auto_minor_upgrade,
    ),
    resource_policy(
        "rds-not-default-vpc",
        severity="high",
        controls=(
            "PCI-DSS 1.3.1",
            "SOC2 CC6.6",
        ),
        types=[INSTANCE],
        description="An instance without its own subnet group and security group lands in the default VPC/security group, shared with everything else.",
        remediation="set dbSubnetGroupName to the stack's private DB subnet group and vpcSecurityGroupIds to the database security group.",
        check=_not_default_network,
    ),
    resource_policy(
        "rds-performance-insights-cmk",
        severity="medium",
        controls=(
            "PCI-DSS 3.5.1",
            "SOC2 CC6.1",
        ),
        types=[INSTANCE],
        description="Performance Insights stores query text; it must be encrypted with our key.",
        remediation="set performanceInsightsKmsKeyId to the stack's RDS KMS key (or turn Performance Insights off).",
        check=_performance_insights_cmk,
    ),
]
