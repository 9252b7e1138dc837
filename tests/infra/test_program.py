"""The whole program on both stacks: everything lives in a component, the data stores admit exactly the
cluster's security group, the stack exports what operators and the runbook use."""

from __future__ import annotations

import pytest

from infra.config import StackConfig, load_stack_file
from stacks.plan import load_config, run_program
from tests.infra.checks import as_list, assert_irsa_trust, statements
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


# --- Security properties that hold only when the components are composed right ----------------------


def _key_arn(config: StackConfig, captured: Captured, purpose: str) -> str:
    return str(captured.outputs("aws:kms/key:Key", f"ai-agents-{config.environment}-{purpose}")["arn"])


def kubernetes_objects_use_the_cluster_provider(captured: Captured) -> None:
    """Never the ambient kubeconfig: every Kubernetes resource goes through the cluster's provider."""
    provider = captured.one("pulumi:providers:kubernetes")
    kubernetes = [r for r in captured.registrations if r.type.startswith("kubernetes:") and r.custom]
    assert kubernetes, "the program declares no Kubernetes resources"
    for resource in kubernetes:
        assert resource.provider.startswith(provider.urn + "::"), f"{resource.urn} uses {resource.provider!r}"


def test_each_store_is_encrypted_with_its_own_key(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    assert captured.inputs("eks:index:Cluster")["encryptionConfigKeyArn"] == _key_arn(config, captured, "eks")
    control_plane_logs = captured.inputs(
        "aws:cloudwatch/logGroup:LogGroup", f"ai-agents-{config.environment}-control-plane"
    )
    assert control_plane_logs["kmsKeyId"] == _key_arn(config, captured, "logs")
    for secret in captured.of_type("aws:secretsmanager/secret:Secret"):
        assert secret.inputs["kmsKeyId"] == _key_arn(config, captured, "secrets"), secret.name
    for repository in captured.of_type("aws:ecr/repository:Repository"):
        assert repository.inputs["encryptionConfigurations"][0]["kmsKey"] == _key_arn(config, captured, "ecr")


def test_control_plane_is_audited_and_reachable_only_from_admin_cidrs(
    stack: tuple[StackConfig, Captured],
) -> None:
    config, captured = stack
    cluster = captured.inputs("eks:index:Cluster")
    assert cluster["name"] == f"ai-agents-{config.environment}", "subnets are tagged for this name"
    for subnet in captured.of_type("aws:ec2/subnet:Subnet"):
        assert f"kubernetes.io/cluster/{cluster['name']}" in subnet.inputs["tags"]
    assert cluster["enabledClusterLogTypes"] == [
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    ]
    assert cluster["endpointPrivateAccess"] is True
    # No CIDRs listed: the endpoint is private (the CI runners reach it from inside the VPC); listed
    # CIDRs open the public endpoint to them alone, never to everyone.
    public = config.cluster.public_access_cidrs
    assert cluster["endpointPublicAccess"] is bool(public)
    assert cluster.get("publicAccessCidrs") == (public or None)
    assert "0.0.0.0/0" not in (public or [])


def test_nodes_run_in_the_private_subnets_with_imdsv2(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    # Registration order varies between runs; the subnets are compared as sets.
    private = {
        s.outputs["id"]
        for s in captured.of_type("aws:ec2/subnet:Subnet")
        if s.name.startswith(f"ai-agents-{config.environment}-private-")
    }
    assert len(private) == config.network.az_count
    assert set(captured.inputs("eks:index:Cluster")["privateSubnetIds"]) == private
    assert captured.inputs("eks:index:Cluster")["nodeAssociatePublicIpAddress"] is False
    groups = captured.of_type("eks:index:ManagedNodeGroup")
    assert len(groups) == len(config.cluster.node_groups)
    for group in groups:
        assert set(group.inputs["subnetIds"]) == private
    for template in captured.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        options = template.inputs["metadataOptions"]
        assert options["httpTokens"] == "required" and options["httpPutResponseHopLimit"] == 1


def test_app_roles_trust_this_clusters_oidc_provider(stack: tuple[StackConfig, Captured]) -> None:
    config, captured = stack
    eks = captured.outputs("eks:index:Cluster")
    for account in ("api", "worker", "migrations"):
        role = captured.inputs("aws:iam/role:Role", f"ai-agents-{config.environment}-{account}")
        assert_irsa_trust(
            role["assumeRolePolicy"],
            provider_arn=eks["oidcProviderArn"],
            issuer=eks["oidcIssuer"],
            namespace=config.app.namespace,
            account=account,
        )


def test_no_iam_policy_in_the_program_allows_a_wildcard_action(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    documents = [
        p.inputs["policy"]
        for p in (
            *captured.of_type("aws:iam/rolePolicy:RolePolicy"),
            *captured.of_type("aws:iam/policy:Policy"),
        )
    ]
    assert documents
    for document in documents:
        for statement in statements(document):
            # The pack's definition (policy/iam.py): "*" or "service:*". A suffix such as
            # kms:GenerateDataKey* names one family of calls; the app's own roles allow none.
            wildcards = [a for a in as_list(statement["Action"]) if a == "*" or a.endswith(":*")]
            assert not wildcards, statement


def test_kubernetes_resources_use_the_cluster_provider(stack: tuple[StackConfig, Captured]) -> None:
    _, captured = stack
    kubernetes_objects_use_the_cluster_provider(captured)


def test_the_provider_check_catches_a_resource_on_the_ambient_provider() -> None:
    """Mutation: a Kubernetes object on the default provider must fail the provider check."""
    captured = run_stack("staging")
    victim = next(r for r in captured.registrations if r.type.startswith("kubernetes:") and r.custom)
    victim.provider = "urn:pulumi:staging::ai-agents-platform::pulumi:providers:kubernetes::default::id"
    with pytest.raises(AssertionError, match="uses"):
        kubernetes_objects_use_the_cluster_provider(captured)
