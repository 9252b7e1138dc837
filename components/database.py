"""RDS PostgreSQL: private, TLS-only, encrypted with the stack's keys, reachable only from the cluster.

The master password is never in the program: RDS generates it, keeps it in Secrets Manager (encrypted
with the secrets key) and rotates it. Applications connect with IAM authentication or with credentials
the migrations job derives from that secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.database_settings import DatabaseSettings
from components.firewall import security_group_admitting_only
from components.irsa import account_service_trust_policy

POSTGRES_PORT = 5432
MASTER_USERNAME = "dbadmin"
# RSA 2048 with a 2061 expiry. The pods verify it (sslmode verify-full) against RDS's global CA bundle,
# which the images carry (app/docker/, components/workloads/contract.py RDS_CA_BUNDLE_PATH).
CA_CERT_IDENTIFIER = "rds-ca-rsa2048-g1"
LOG_EXPORTS = ("postgresql", "upgrade")
# Slow statements are logged with their parameters (ticket text): keep them a month, not forever.
LOG_RETENTION_DAYS = 30
MONITORING_PRINCIPAL = "monitoring.rds.amazonaws.com"


@dataclass(frozen=True)
class DbParameter:
    name: str
    value: str
    # Static parameters only take effect after a reboot; RDS rejects them with apply_method=immediate.
    static: bool = False

    def to_args(self) -> aws.rds.ParameterGroupParameterArgs:
        return aws.rds.ParameterGroupParameterArgs(
            name=self.name,
            value=self.value,
            apply_method="pending-reboot" if self.static else "immediate",
        )


PARAMETERS: tuple[DbParameter, ...] = (
    # Refuse every connection that is not TLS.
    DbParameter("rds.force_ssl", "1"),
    DbParameter("password_encryption", "scram-sha-256"),
    # Enough to investigate an incident without logging every statement (which could log ticket text).
    DbParameter("log_min_duration_statement", "1000"),
    DbParameter("log_connections", "1"),
    DbParameter("log_disconnections", "1"),
    DbParameter("log_lock_waits", "1"),
    DbParameter("log_statement", "ddl"),
    DbParameter("log_temp_files", "10240"),
    DbParameter("log_autovacuum_min_duration", "10000"),
    DbParameter("shared_preload_libraries", "pg_stat_statements", static=True),
)


def parameter_group_family(engine_version: str) -> str:
    """``postgres17`` for ``17`` (or ``17.6``): RDS families are per major version."""
    return f"postgres{engine_version.partition('.')[0]}"


def first_secret_arn(secrets: Sequence[aws.rds.outputs.InstanceMasterUserSecret]) -> str:
    arn = secrets[0].secret_arn if secrets else None
    if not arn:
        raise ValueError("RDS returned no managed master user secret (is manage_master_user_password on?)")
    return arn


@dataclass(frozen=True)
class DatabaseArgs:
    settings: DatabaseSettings
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    # The only security group admitted on 5432: the EKS cluster's, shared by nodes and pods.
    allowed_security_group_id: pulumi.Input[str]
    # Storage, snapshots and Performance Insights.
    kms_key_arn: pulumi.Input[str]
    # The RDS-managed master user secret in Secrets Manager.
    secrets_kms_key_arn: pulumi.Input[str]
    # The CloudWatch groups the PostgreSQL and upgrade logs are exported to.
    logs_kms_key_arn: pulumi.Input[str]


class Database(pulumi.ComponentResource):
    """RDS PostgreSQL in private subnets, Multi-AZ per config, reachable only from the cluster."""

    endpoint: pulumi.Output[str]
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    master_secret_arn: pulumi.Output[str]
    resource_id: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    instance_identifier: pulumi.Output[str]
    database_name: pulumi.Output[str]

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:database:Database", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        settings = args.settings

        security_group = security_group_admitting_only(
            name,
            vpc_id=args.vpc_id,
            source_security_group_id=args.allowed_security_group_id,
            port=POSTGRES_PORT,
            description="PostgreSQL: reachable only from the EKS cluster security group",
            opts=self._child,
        )
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args.subnet_ids,
            description="Private subnets of the PostgreSQL instance",
            opts=self._child,
        )
        parameter_group = aws.rds.ParameterGroup(
            f"{name}-params",
            family=parameter_group_family(settings.engine_version),
            description="TLS-only PostgreSQL with slow-query, connection and lock logging",
            parameters=[parameter.to_args() for parameter in PARAMETERS],
            opts=self._child,
        )
        instance = aws.rds.Instance(
            f"{name}-postgres",
            # A fixed identifier, so the log groups RDS exports to can exist (encrypted, with a
            # retention) before RDS would create them unencrypted and kept forever.
            identifier=name,
            engine="postgres",
            engine_version=settings.engine_version,
            instance_class=settings.instance_class,
            db_name=settings.database_name,
            port=POSTGRES_PORT,
            username=MASTER_USERNAME,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=args.secrets_kms_key_arn,
            iam_database_authentication_enabled=True,
            # Network: private subnets, own security group, never a public address.
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[security_group.id],
            publicly_accessible=False,
            multi_az=settings.multi_az,
            ca_cert_identifier=CA_CERT_IDENTIFIER,
            parameter_group_name=parameter_group.name,
            # Storage: encrypted with our key, grows on its own up to the ceiling.
            storage_type="gp3",
            allocated_storage=settings.allocated_storage_gib,
            max_allocated_storage=settings.max_allocated_storage_gib,
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            # Recovery.
            backup_retention_period=settings.backup_retention_days,
            backup_window=settings.backup_window,
            copy_tags_to_snapshot=True,
            # A protected database refuses deletion, leaves a final snapshot and keeps its backups.
            deletion_protection=settings.deletion_protection,
            skip_final_snapshot=not settings.deletion_protection,
            final_snapshot_identifier=self._final_snapshot_name() if settings.deletion_protection else None,
            delete_automated_backups=not settings.deletion_protection,
            # Patching happens in the window, never as a side effect of `pulumi up`.
            maintenance_window=settings.maintenance_window,
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            apply_immediately=False,
            # Observability.
            performance_insights_enabled=True,
            performance_insights_kms_key_id=args.kms_key_arn,
            performance_insights_retention_period=settings.performance_insights_retention_days,
            monitoring_interval=settings.monitoring_interval_seconds,
            monitoring_role_arn=self._monitoring_role().arn,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=settings.deletion_protection,
                depends_on=self._log_groups(name, args.logs_kms_key_arn),
            ),
        )

        self.endpoint = instance.endpoint
        self.address = instance.address
        self.port = instance.port
        self.master_secret_arn = instance.master_user_secrets.apply(first_secret_arn)
        self.resource_id = instance.resource_id
        self.security_group_id = security_group.id
        self.instance_identifier = instance.identifier
        self.database_name = instance.db_name
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "address": self.address,
                "port": self.port,
                "master_secret_arn": self.master_secret_arn,
                "resource_id": self.resource_id,
                "security_group_id": self.security_group_id,
                "instance_identifier": self.instance_identifier,
                "database_name": self.database_name,
            }
        )

    def _final_snapshot_name(self) -> pulumi.Output[str]:
        """``<name>-final-<8 hex>``: the suffix is drawn once per life of the stack, so a stack destroyed
        and created again does not collide with the snapshot its previous life left behind."""
        suffix = random.RandomId(f"{self._name}-final-snapshot", byte_length=4, opts=self._child)
        return suffix.hex.apply(lambda h: f"{self._name}-final-{h}")

    def _log_groups(self, identifier: str, kms_key_arn: pulumi.Input[str]) -> list[pulumi.Resource]:
        """The groups RDS exports each log type to, under the name RDS uses for them."""
        return [
            aws.cloudwatch.LogGroup(
                f"{self._name}-{log_type}",
                name=f"/aws/rds/instance/{identifier}/{log_type}",
                retention_in_days=LOG_RETENTION_DAYS,
                kms_key_id=kms_key_arn,
                opts=self._child,
            )
            for log_type in LOG_EXPORTS
        ]

    def _monitoring_role(self) -> aws.iam.Role:
        """The role Enhanced Monitoring assumes to publish OS metrics to CloudWatch."""
        role = aws.iam.Role(
            f"{self._name}-monitoring",
            assume_role_policy=account_service_trust_policy(MONITORING_PRINCIPAL, self),
            opts=self._child,
        )
        aws.iam.RolePolicyAttachment(
            f"{self._name}-monitoring",
            role=role.name,
            policy_arn=aws.iam.ManagedPolicy.AMAZON_RDS_ENHANCED_MONITORING_ROLE,
            opts=self._child,
        )
        return role
