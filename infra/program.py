"""The whole platform, composed in the order of the architecture diagram (docs/architecture.md).

keys → network → secrets → cluster → database, cache, registry → platform → images → workloads → exports
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.keys import Keys, KeysArgs
from components.network import Network, NetworkArgs
from infra.config import StackConfig, load_from_pulumi


def resource_prefix(config: StackConfig) -> str:
    """Every physical name starts with this, so two stacks can share an account."""
    return f"ai-agents-{pulumi.get_stack()}"


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
