"""The VPC every other component lives in.

Public subnets hold only the load balancer and the NAT gateways; nodes, the database and the cache live
in private subnets. Address plan for a VPC of prefix /p: private subnets are /p+3 (large, because the
VPC CNI gives every pod a VPC address), public subnets are /p+6 carved out of the last /p+3 block.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.irsa import account_service_trust_policy
from components.network_settings import NetworkSettings

FLOW_LOG_PRINCIPAL = "vpc-flow-logs.amazonaws.com"


def subnet_cidrs(vpc_cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """(private, public) CIDRs, one of each per AZ, never overlapping."""
    vpc = ipaddress.ip_network(vpc_cidr)
    blocks = list(vpc.subnets(new_prefix=vpc.prefixlen + 3))
    public_pool = blocks[-1]
    private = [str(block) for block in blocks[:az_count]]
    public = [str(block) for block in list(public_pool.subnets(new_prefix=vpc.prefixlen + 6))[:az_count]]
    return private, public


@dataclass(frozen=True)
class NetworkArgs:
    settings: NetworkSettings
    region: str
    # Subnets are tagged for this cluster so the AWS load balancer integration finds them.
    cluster_name: str
    flow_log_kms_key_arn: pulumi.Input[str]


class Network(pulumi.ComponentResource):
    """VPC over the configured AZs: public and private subnets, NAT, flow logs, S3 gateway endpoint."""

    vpc_id: pulumi.Output[str]
    vpc_cidr: str
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]
    availability_zones: pulumi.Output[list[str]]
    nat_gateway_count: int

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:network:Network", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=settings.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{name}-vpc"},
            opts=self._child,
        )
        # The default security group allows all traffic between its members; strip its rules so
        # nothing can use it by accident (CIS AWS 5.4).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, ingress=[], egress=[], opts=self._child
        )
        zones = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)
        )
        az_names = [zones.names[i] for i in range(settings.az_count)]
        private_cidrs, public_cidrs = subnet_cidrs(settings.vpc_cidr, settings.az_count)

        public = [
            self._subnet(f"public-{i}", vpc.id, az, cidr, {**cluster_tag, "kubernetes.io/role/elb": "1"})
            for i, (az, cidr) in enumerate(zip(az_names, public_cidrs, strict=True))
        ]
        private = [
            self._subnet(
                f"private-{i}", vpc.id, az, cidr, {**cluster_tag, "kubernetes.io/role/internal-elb": "1"}
            )
            for i, (az, cidr) in enumerate(zip(az_names, private_cidrs, strict=True))
        ]
        self._public_routing(vpc, public)
        private_route_tables = self._private_routing(vpc, public, private, settings)
        self._flow_logs(vpc, settings, args.flow_log_kms_key_arn)
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in private_route_tables],
            tags={"Name": f"{name}-s3"},
            opts=self._child,
        )

        self.vpc_id = vpc.id
        self.vpc_cidr = settings.vpc_cidr
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public])
        self.availability_zones = pulumi.Output.all(*az_names)
        self.nat_gateway_count = settings.az_count if settings.nat_gateways == "perAz" else 1
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
                "availability_zones": self.availability_zones,
            }
        )

    def _subnet(
        self, role: str, vpc_id: pulumi.Input[str], az: pulumi.Input[str], cidr: str, tags: dict[str, str]
    ) -> aws.ec2.Subnet:
        return aws.ec2.Subnet(
            f"{self._name}-{role}",
            vpc_id=vpc_id,
            availability_zone=az,
            cidr_block=cidr,
            # Nothing launched in a public subnet gets a public address unless it asks for one.
            map_public_ip_on_launch=False,
            tags={"Name": f"{self._name}-{role}", **tags},
            opts=self._child,
        )

    def _public_routing(self, vpc: aws.ec2.Vpc, public: Sequence[aws.ec2.Subnet]) -> None:
        igw = aws.ec2.InternetGateway(
            f"{self._name}-igw", vpc_id=vpc.id, tags={"Name": f"{self._name}-igw"}, opts=self._child
        )
        table = aws.ec2.RouteTable(
            f"{self._name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": f"{self._name}-public"},
            opts=self._child,
        )
        for i, subnet in enumerate(public):
            aws.ec2.RouteTableAssociation(
                f"{self._name}-public-{i}", subnet_id=subnet.id, route_table_id=table.id, opts=self._child
            )

    def _private_routing(
        self,
        vpc: aws.ec2.Vpc,
        public: Sequence[aws.ec2.Subnet],
        private: Sequence[aws.ec2.Subnet],
        settings: NetworkSettings,
    ) -> list[aws.ec2.RouteTable]:
        nat_count = len(public) if settings.nat_gateways == "perAz" else 1
        nats: list[aws.ec2.NatGateway] = []
        for i in range(nat_count):
            eip = aws.ec2.Eip(
                f"{self._name}-nat-{i}",
                domain="vpc",
                tags={"Name": f"{self._name}-nat-{i}"},
                opts=self._child,
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"{self._name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public[i].id,
                    tags={"Name": f"{self._name}-nat-{i}"},
                    opts=self._child,
                )
            )
        tables: list[aws.ec2.RouteTable] = []
        for i, subnet in enumerate(private):
            # With one NAT per AZ a zone's egress never depends on another zone.
            nat = nats[i % len(nats)]
            table = aws.ec2.RouteTable(
                f"{self._name}-private-{i}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags={"Name": f"{self._name}-private-{i}"},
                opts=self._child,
            )
            aws.ec2.RouteTableAssociation(
                f"{self._name}-private-{i}", subnet_id=subnet.id, route_table_id=table.id, opts=self._child
            )
            tables.append(table)
        return tables

    def _flow_logs(self, vpc: aws.ec2.Vpc, settings: NetworkSettings, kms_key_arn: pulumi.Input[str]) -> None:
        log_group = aws.cloudwatch.LogGroup(
            f"{self._name}-flow-logs",
            retention_in_days=settings.flow_log_retention_days,
            kms_key_id=kms_key_arn,
            opts=self._child,
        )
        role = aws.iam.Role(
            f"{self._name}-flow-logs",
            assume_role_policy=account_service_trust_policy(FLOW_LOG_PRINCIPAL, self),
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{self._name}-flow-logs",
            role=role.id,
            policy=log_group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    }
                )
            ),
            opts=self._child,
        )
        aws.ec2.FlowLog(
            f"{self._name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            opts=self._child,
        )
