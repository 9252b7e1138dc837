"""The network component under mocks: subnets per AZ, tags, NAT per stack, flow logs, S3 endpoint."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from components.network import Network, NetworkArgs, subnet_cidrs
from components.network_settings import NetworkSettings
from infra.config import load_stack_file
from stacks.mocks import ACCOUNT_ID
from tests.infra.harness import Captured, run

LOGS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/logs"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"


def _plan(settings: NetworkSettings, stack: str = "staging") -> Captured:
    def program() -> None:
        Network(
            "net",
            NetworkArgs(
                settings=settings,
                region="eu-west-1",
                cluster_name="ai-agents-test",
                flow_log_kms_key_arn=LOGS_KEY,
            ),
        )

    return run(program, stack=stack)


@pytest.fixture(scope="module", params=["staging", "production"])
def stack_network(request: pytest.FixtureRequest) -> tuple[NetworkSettings, Captured]:
    settings = load_stack_file(request.param).network
    return settings, _plan(settings, request.param)


def _subnets(captured: Captured, role: str) -> list[dict[str, Any]]:
    return [
        captured.inputs(SUBNET, r.name) for r in captured.of_type(SUBNET) if r.name.startswith(f"net-{role}-")
    ]


def private_subnets_are_private(captured: Captured) -> None:
    """No private subnet routes to the internet gateway or hands out public addresses."""
    for subnet in _subnets(captured, "private"):
        assert subnet["mapPublicIpOnLaunch"] is False, subnet
        assert subnet["tags"].get("kubernetes.io/role/internal-elb") == "1", subnet
    for table in captured.of_type(ROUTE_TABLE):
        if table.name.startswith("net-private-"):
            routes = captured.inputs(ROUTE_TABLE, table.name)["routes"]
            assert all("gatewayId" not in route for route in routes), routes


def test_one_public_and_one_private_subnet_per_az(stack_network: tuple[NetworkSettings, Captured]) -> None:
    settings, captured = stack_network
    for role in ("public", "private"):
        subnets = _subnets(captured, role)
        assert len(subnets) == settings.az_count
        assert len({s["availabilityZone"] for s in subnets}) == settings.az_count


def test_subnets_fit_the_vpc_and_never_overlap(stack_network: tuple[NetworkSettings, Captured]) -> None:
    settings, captured = stack_network
    vpc = ipaddress.IPv4Network(settings.vpc_cidr)
    cidrs = [
        ipaddress.IPv4Network(s["cidrBlock"])
        for s in _subnets(captured, "public") + _subnets(captured, "private")
    ]
    assert all(c.subnet_of(vpc) for c in cidrs)
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])


def test_subnets_are_tagged_for_the_cluster_and_load_balancers(
    stack_network: tuple[NetworkSettings, Captured],
) -> None:
    _, captured = stack_network
    for subnet in _subnets(captured, "public"):
        assert subnet["tags"]["kubernetes.io/role/elb"] == "1"
        assert subnet["tags"]["kubernetes.io/cluster/ai-agents-test"] == "shared"
    private_subnets_are_private(captured)


def test_nat_gateways_per_az_in_production_single_in_staging() -> None:
    production = load_stack_file("production").network
    staging = load_stack_file("staging").network
    assert (
        len(_plan(production, "production").of_type("aws:ec2/natGateway:NatGateway")) == production.az_count
    )
    assert len(_plan(staging).of_type("aws:ec2/natGateway:NatGateway")) == 1


def test_each_private_subnet_egresses_through_a_nat_in_a_public_subnet(
    stack_network: tuple[NetworkSettings, Captured],
) -> None:
    _, captured = stack_network
    for table in captured.of_type(ROUTE_TABLE):
        routes = captured.inputs(ROUTE_TABLE, table.name)["routes"]
        if table.name.startswith("net-private-"):
            assert [r["cidrBlock"] for r in routes if r.get("natGatewayId", "").startswith("nat-")] == [
                "0.0.0.0/0"
            ]


def test_flow_logs_capture_all_traffic_into_an_encrypted_group(
    stack_network: tuple[NetworkSettings, Captured],
) -> None:
    settings, captured = stack_network
    flow_log = captured.inputs("aws:ec2/flowLog:FlowLog")
    assert flow_log["trafficType"] == "ALL"
    group = captured.inputs("aws:cloudwatch/logGroup:LogGroup")
    assert group["kmsKeyId"] == LOGS_KEY
    assert group["retentionInDays"] == settings.flow_log_retention_days
    policy = json.loads(captured.inputs("aws:iam/rolePolicy:RolePolicy")["policy"])
    resources = policy["Statement"][0]["Resource"]
    assert all(r.startswith("arn:aws:logs:") for r in resources), (
        "the delivery role may write only its own group"
    )
    trust = json.loads(captured.inputs("aws:iam/role:Role")["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    # Confused deputy: the flow-logs service assumes it only for this account's VPCs.
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}


def test_s3_gateway_endpoint_serves_every_private_route_table(
    stack_network: tuple[NetworkSettings, Captured],
) -> None:
    settings, captured = stack_network
    endpoint = captured.inputs("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint["serviceName"] == "com.amazonaws.eu-west-1.s3"
    assert endpoint["vpcEndpointType"] == "Gateway"
    assert len(endpoint["routeTableIds"]) == settings.az_count


def test_default_security_group_has_no_rules(stack_network: tuple[NetworkSettings, Captured]) -> None:
    _, captured = stack_network
    default = captured.inputs("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.get("ingress", []) == [] and default.get("egress", []) == []


def test_every_child_is_parented_to_the_component(stack_network: tuple[NetworkSettings, Captured]) -> None:
    _, captured = stack_network
    component = captured.one("ai-agents:network:Network")
    children = [r for r in captured.registrations if r is not component]
    assert children and all(r.parent == component.urn for r in children)


def test_the_privacy_check_catches_a_public_private_subnet() -> None:
    """Mutation: a private subnet that maps public IPs must fail the check the tests above rely on."""
    captured = _plan(load_stack_file("staging").network)
    subnet = next(r for r in captured.of_type(SUBNET) if r.name == "net-private-0")
    subnet.inputs["mapPublicIpOnLaunch"] = True
    with pytest.raises(AssertionError):
        private_subnets_are_private(captured)


@pytest.mark.parametrize("az_count", [2, 3, 6])
@pytest.mark.parametrize("vpc_cidr", ["10.0.0.0/16", "172.16.0.0/12", "10.1.0.0/20"])
def test_address_plan_never_overlaps(vpc_cidr: str, az_count: int) -> None:
    private, public = subnet_cidrs(vpc_cidr, az_count)
    networks = [ipaddress.ip_network(c) for c in private + public]
    assert len(networks) == 2 * az_count
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])
