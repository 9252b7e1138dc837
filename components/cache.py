"""ElastiCache (Valkey or Redis): the Celery broker.

TLS is required and every client must present the AUTH token (kept in Secrets Manager by AppSecrets);
the group fails over automatically to a replica in another zone; the parameter group never evicts,
because an evicted key is a silently lost task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cache_settings import CacheSettings
from components.firewall import security_group_admitting_only

REDIS_PORT = 6379
LOG_RETENTION_DAYS = 30
# A broker must refuse writes when full rather than drop queued tasks.
PARAMETERS: dict[str, str] = {"maxmemory-policy": "noeviction"}
LOG_TYPES = ("slow-log", "engine-log")


def parameter_group_family(engine: str, engine_version: str) -> str:
    """ElastiCache's family name: ``valkey8`` for valkey 8.0, ``redis7`` for redis 7.1, ``redis6.x``."""
    major = engine_version.partition(".")[0]
    if engine == "valkey":
        return f"valkey{major}"
    if major == "6":
        return "redis6.x"
    if int(major) >= 7:
        return f"redis{major}"
    raise ValueError(f"{engine} {engine_version} is not supported (TLS with AUTH rotation needs 6 or newer)")


@dataclass(frozen=True)
class CacheArgs:
    settings: CacheSettings
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    # The only security group admitted on 6379: the EKS cluster's, shared by nodes and pods.
    allowed_security_group_id: pulumi.Input[str]
    # The AUTH token clients present (AppSecrets' secret Output).
    auth_token: pulumi.Input[str]
    # Data at rest and snapshots.
    kms_key_arn: pulumi.Input[str]
    # The slow-log and engine-log CloudWatch groups.
    logs_kms_key_arn: pulumi.Input[str]
    # Production: the engine refuses to delete or replace what holds state (`protect`).
    protect: bool = False


class Cache(pulumi.ComponentResource):
    """A replication group of 1 + replicas nodes over the private subnets, reachable only from the cluster."""

    primary_endpoint: pulumi.Output[str]
    reader_endpoint: pulumi.Output[str]
    port: int
    security_group_id: pulumi.Output[str]
    replication_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:cache:Cache", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        settings = args.settings

        security_group = security_group_admitting_only(
            name,
            vpc_id=args.vpc_id,
            source_security_group_id=args.allowed_security_group_id,
            port=REDIS_PORT,
            description=f"{settings.engine}: reachable only from the EKS cluster security group",
            opts=self._child,
        )
        subnet_group = aws.elasticache.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args.subnet_ids,
            description="Private subnets of the broker",
            opts=self._child,
        )
        parameter_group = aws.elasticache.ParameterGroup(
            f"{name}-params",
            family=parameter_group_family(settings.engine, settings.engine_version),
            description="Celery broker: never evict keys",
            parameters=[
                aws.elasticache.ParameterGroupParameterArgs(name=key, value=value)
                for key, value in PARAMETERS.items()
            ],
            opts=self._child,
        )
        group = aws.elasticache.ReplicationGroup(
            # Short role: the generated replication group id must stay within 40 characters.
            f"{name}-rg",
            description=f"Celery broker ({settings.engine}, TLS + AUTH, Multi-AZ)",
            engine=settings.engine,
            engine_version=settings.engine_version,
            node_type=settings.node_type,
            port=REDIS_PORT,
            parameter_group_name=parameter_group.name,
            # One primary plus replicas in other zones; losing the primary promotes a replica.
            num_cache_clusters=1 + settings.replicas,
            multi_az_enabled=True,
            automatic_failover_enabled=True,
            # Network: private subnets, own security group.
            subnet_group_name=subnet_group.name,
            security_group_ids=[security_group.id],
            # In transit: TLS only, AUTH required. A rotation takes two deploys: ROTATE adds the new token
            # beside the old while the pods restart, then SET (the steady state) leaves the new one alone.
            # The provider sends the strategy whenever it changes, so going back to SET completes it.
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            # The provider always registers auth_token as a secret, whatever the caller passes.
            auth_token=args.auth_token,
            auth_token_update_strategy=settings.auth_token_update_strategy,
            # At rest: our key.
            at_rest_encryption_enabled=True,
            kms_key_id=args.kms_key_arn,
            snapshot_retention_limit=settings.snapshot_retention_days,
            snapshot_window=settings.snapshot_window,
            maintenance_window=settings.maintenance_window,
            # Minors move only through engineVersion. ElastiCache needs major.minor from 7 on (no
            # major-only version to float under), and an automatic minor upgrade past the configured one
            # makes the provider read the config as a downgrade, which it plans as a replacement of the
            # group. Patch releases within the minor still arrive as service updates in the window.
            auto_minor_version_upgrade=False,
            apply_immediately=False,
            log_delivery_configurations=[
                self._log_delivery(log_type, args.logs_kms_key_arn) for log_type in LOG_TYPES
            ],
            opts=self._child.merge(pulumi.ResourceOptions(protect=args.protect)),
        )

        self.primary_endpoint = group.primary_endpoint_address
        self.reader_endpoint = group.reader_endpoint_address
        self.port = REDIS_PORT
        self.security_group_id = security_group.id
        # A replication group's id is its replication group id.
        self.replication_group_id = group.id
        self.register_outputs(
            {
                "primary_endpoint": self.primary_endpoint,
                "reader_endpoint": self.reader_endpoint,
                "port": self.port,
                "security_group_id": self.security_group_id,
                "replication_group_id": self.replication_group_id,
            }
        )

    def _log_delivery(
        self, log_type: str, kms_key_arn: pulumi.Input[str]
    ) -> aws.elasticache.ReplicationGroupLogDeliveryConfigurationArgs:
        """An encrypted CloudWatch group for one log type, and the delivery that writes to it."""
        log_group = aws.cloudwatch.LogGroup(
            f"{self._name}-{log_type}",
            retention_in_days=LOG_RETENTION_DAYS,
            kms_key_id=kms_key_arn,
            opts=self._child,
        )
        return aws.elasticache.ReplicationGroupLogDeliveryConfigurationArgs(
            destination=log_group.name,
            destination_type="cloudwatch-logs",
            log_format="json",
            log_type=log_type,
        )
