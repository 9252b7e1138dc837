"""The whole platform, composed in the order of the architecture diagram (docs/architecture.md).

keys → network → secrets → cluster → database, cache, registry → platform → images → workloads → exports
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.cache import Cache, CacheArgs
from components.database import Database, DatabaseArgs
from components.keys import Keys, KeysArgs
from components.network import Network, NetworkArgs
from infra.config import StackConfig, load_from_pulumi


def resource_prefix(config: StackConfig) -> str:
    """Every physical name starts with this, so two stacks can share an account."""
    return f"ai-agents-{pulumi.get_stack()}"


def data_stores(
    prefix: str,
    config: StackConfig,
    keys: Keys,
    network: Network,
    *,
    cluster_security_group_id: pulumi.Input[str],
    redis_auth_token: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> tuple[Database, Cache]:
    """PostgreSQL and the broker, in the private subnets, admitting only the cluster's security group."""
    database = Database(
        f"{prefix}-db",
        DatabaseArgs(
            settings=config.database,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            allowed_security_group_id=cluster_security_group_id,
            kms_key_arn=keys.arns["rds"],
            secrets_kms_key_arn=keys.arns["secrets"],
            logs_kms_key_arn=keys.arns["logs"],
        ),
        opts,
    )
    cache = Cache(
        f"{prefix}-cache",
        CacheArgs(
            settings=config.cache,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            allowed_security_group_id=cluster_security_group_id,
            auth_token=redis_auth_token,
            kms_key_arn=keys.arns["elasticache"],
            logs_kms_key_arn=keys.arns["logs"],
        ),
        opts,
    )
    return database, cache


def export_data_stores(database: Database, cache: Cache) -> None:
    pulumi.export("databaseEndpoint", database.endpoint)
    pulumi.export("databaseMasterSecretArn", database.master_secret_arn)
    pulumi.export("cachePrimaryEndpoint", cache.primary_endpoint)


def main() -> None:
    config = load_from_pulumi()
    prefix = resource_prefix(config)
    aws_provider = aws.Provider(
        "aws",
        region=config.aws.region,
        default_tags=aws.ProviderDefaultTagsArgs(
            tags={"stack": pulumi.get_stack(), "managed-by": "pulumi", **config.aws.tags}
        ),
    )
    on_aws = pulumi.ResourceOptions(providers={"aws": aws_provider})

    keys = Keys(prefix, KeysArgs(region=config.aws.region), on_aws)
    network = Network(
        prefix,
        NetworkArgs(
            settings=config.network,
            region=config.aws.region,
            cluster_name=prefix,
            flow_log_kms_key_arn=keys.arns["logs"],
        ),
        on_aws,
    )

    pulumi.export("vpcId", network.vpc_id)
    pulumi.export("privateSubnetIds", network.private_subnet_ids)
    pulumi.export("publicSubnetIds", network.public_subnet_ids)
