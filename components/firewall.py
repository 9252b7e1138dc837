"""Security groups for the data tier: one group per store, admitting one source group on one port.

The database and the cache share this shape, so it lives here once. Rules are separate
``aws.vpc.SecurityGroupIngressRule`` resources (one rule, one resource, its own id and tags) rather than
inline blocks, which the AWS provider cannot mix with standalone rules without fighting over them.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def security_group_admitting_only(
    name: str,
    *,
    vpc_id: pulumi.Input[str],
    source_security_group_id: pulumi.Input[str],
    port: int,
    description: str,
    opts: pulumi.ResourceOptions,
) -> aws.ec2.SecurityGroup:
    """``{name}-sg`` with exactly one ingress rule (``{name}-ingress``): TCP ``port`` from the source group.

    No egress rule is declared: the provider removes AWS's default allow-all egress from groups it
    creates, and a database or cache never opens connections of its own.
    """
    group = aws.ec2.SecurityGroup(
        f"{name}-sg",
        vpc_id=vpc_id,
        description=description,
        tags={"Name": f"{name}-sg"},
        opts=opts,
    )
    aws.vpc.SecurityGroupIngressRule(
        f"{name}-ingress",
        security_group_id=group.id,
        referenced_security_group_id=source_security_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=f"TCP {port} from the cluster security group only",
        opts=opts,
    )
    return group
