"""The whole program on both stacks: everything lives in a component, the data stores admit exactly the
cluster's security group, the stack exports what operators and the runbook use."""

from __future__ import annotations

import pytest

from infra.config import StackConfig, load_stack_file
from stacks.plan import load_config, run_program
from tests.infra.harness import Captured, run_stack

INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


@pytest.fixture(scope="module", params=["staging", "production"])
def stack(request: pytest.FixtureRequest) -> tuple[StackConfig, Captured]:
    return load_stack_file(request.param), run_stack(request.param)


def test_every_resource_belongs_to_a_component(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    components = {r.urn for r in captured.registrations if not r.custom}
    loose = [
        r.urn
        for r in captured.registrations
        if r.custom and not r.type.startswith("pulumi:providers:") and r.parent not in components
    ]
    assert loose == []


def test_data_stores_admit_only_the_cluster_security_group(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    cluster_sg = captured.outputs("eks:index:Cluster")["clusterSecurityGroupId"]
    rules = captured.of_type(INGRESS_RULE)
    by_port = {int(r.inputs["fromPort"]): r.inputs for r in rules}
    assert sorted(by_port) == [5432, 6379]
    for rule in by_port.values():
        assert rule["referencedSecurityGroupId"] == cluster_sg
        assert "cidrIpv4" not in rule and "cidrIpv6" not in rule


def test_production_database_is_protected(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    database = captured.one("aws:rds/instance:Instance")
    assert database.protect is config.is_production
    assert database.inputs["multiAz"] is config.database.multi_az
    assert database.inputs["publiclyAccessible"] is False


EXPORTS = {
    "vpcId",
    "clusterName",
    "kubeconfig",
    "databaseEndpoint",
    "databaseMasterSecretArn",
    "cachePrimaryEndpoint",
    "repositoryUrls",
    "imageDigests",
    "redisAuthSecretArn",
    "llmApiKeySecretArn",
    "tenantSecretPrefix",
    "serviceAccountRoleArns",
    "apiUrl",
}


@pytest.mark.parametrize("stack_name", ["staging", "production"])
def test_stack_outputs_for_operators(stack_name: str) -> None:
    values, config = load_config(stack_name)
    outputs = run_program(stack_name, values, config).outputs
    assert outputs.keys() >= EXPORTS
    assert outputs["kubeconfig"] == "[secret]", "the kubeconfig is exported as a secret"
    assert set(outputs["imageDigests"]) == {"api", "worker", "migrations"}
    assert all(d.startswith("sha256:") for d in outputs["imageDigests"].values())
    assert outputs["apiUrl"] == f"https://{config.public_hostname}"
