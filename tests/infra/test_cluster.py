"""The cluster component under mocks, with each stack's own cluster settings and literal inputs."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.cluster import CLUSTER_ADMIN_POLICY, CONTROL_PLANE_LOG_TYPES, Cluster, ClusterArgs
from components.cluster_settings import ClusterSettings
from infra.config import load_stack_file
from stacks.mocks import is_secret, mock_addon_version
from tests.infra.checks import assert_children_parented, assert_irsa_trust
from tests.infra.harness import Captured, resolve, run

EKS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/eks"
LOGS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/logs"
SUBNETS = ["subnet-0a", "subnet-0b", "subnet-0c"]
NAME = "ai-agents-test"

COMPONENT = "ai-agents:cluster:Cluster"
EKS = "eks:index:Cluster"
NODE_GROUP = "eks:index:ManagedNodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ADDON = "aws:eks/addon:Addon"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
K8S_PROVIDER = "pulumi:providers:kubernetes"
MANAGED = "arn:aws:iam::aws:policy/"


def _plan(settings: ClusterSettings, stack: str = "staging") -> tuple[Captured, dict[str, Any]]:
    outputs: dict[str, Any] = {}

    def program() -> None:
        cluster = Cluster(
            NAME,
            ClusterArgs(
                settings=settings,
                vpc_id="vpc-0test",
                private_subnet_ids=SUBNETS,
                secrets_kms_key_arn=EKS_KEY,
                logs_kms_key_arn=LOGS_KEY,
                log_retention_days=90,
            ),
        )
        outputs.update(
            name=cluster.name,
            provider=cluster.provider,
            kubeconfig=cluster.kubeconfig,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            security_group_id=cluster.security_group_id,
        )

    return run(program, stack=stack), outputs


INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


@pytest.fixture(scope="module", params=["staging", "production"])
def planned(request: pytest.FixtureRequest) -> tuple[ClusterSettings, Captured, dict[str, Any]]:
    settings = load_stack_file(request.param).cluster
    captured, outputs = _plan(settings, request.param)
    return settings, captured, outputs


def control_plane_is_locked_down(cluster: dict[str, Any], public_cidrs: list[str]) -> None:
    """Encrypted secrets, every log type, private endpoint, public endpoint only from the admin CIDRs."""
    assert cluster["encryptionConfigKeyArn"] == EKS_KEY
    assert cluster["enabledClusterLogTypes"] == list(CONTROL_PLANE_LOG_TYPES)
    assert set(CONTROL_PLANE_LOG_TYPES) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert cluster["endpointPrivateAccess"] is True
    assert cluster["endpointPublicAccess"] is bool(public_cidrs)
    assert cluster.get("publicAccessCidrs") == (public_cidrs or None)
    assert "0.0.0.0/0" not in (cluster.get("publicAccessCidrs") or [])
    assert cluster["authenticationMode"] == "API"
    assert cluster["createOidcProvider"] is True


def nodes_are_private_with_imdsv2(captured: Captured) -> None:
    """Every node group launches from a template requiring IMDSv2 with one hop, into the private subnets."""
    templates = {t.name: captured.inputs(LAUNCH_TEMPLATE, t.name) for t in captured.of_type(LAUNCH_TEMPLATE)}
    for group in captured.of_type(NODE_GROUP):
        inputs = captured.inputs(NODE_GROUP, group.name)
        assert inputs["subnetIds"] == SUBNETS, inputs["subnetIds"]
        template = templates[group.name]
        assert template["metadataOptions"]["httpTokens"] == "required", template["metadataOptions"]
        # One hop: a pod (one more hop away) cannot reach the node's credentials; it uses IRSA.
        assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
        [root] = template["blockDeviceMappings"]
        assert root["ebs"]["encrypted"] == "true" and root["ebs"]["volumeType"] == "gp3", root


def test_cluster_is_named_for_the_stack_and_locked_down(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    settings, captured, outputs = planned
    cluster = captured.inputs(EKS)
    assert cluster["name"] == NAME == outputs["name"], "subnets are tagged for this name"
    assert cluster["version"] == settings.kubernetes_version
    # Explicit, so an ageing version is upgraded rather than billed at the extended-support rate.
    assert cluster["upgradePolicy"] == {"supportType": settings.upgrade_policy} == {"supportType": "STANDARD"}
    assert cluster["vpcId"] == "vpc-0test"
    assert cluster["privateSubnetIds"] == SUBNETS
    control_plane_is_locked_down(cluster, settings.public_access_cidrs)


def test_no_default_nodes_or_groups_and_no_public_ips(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, _ = planned
    cluster = captured.inputs(EKS)
    assert cluster["skipDefaultNodeGroup"] is True
    assert cluster["skipDefaultSecurityGroups"] is True
    assert cluster["nodeAssociatePublicIpAddress"] is False


def test_pulumi_eks_does_not_duplicate_the_core_addons(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    """The add-ons below are ours; a second copy from pulumi-eks would fail with 'already exists'."""
    _, captured, _ = planned
    cluster = captured.inputs(EKS)
    assert cluster["useDefaultVpcCni"] is True
    assert cluster["kubeProxyAddonOptions"]["enabled"] is False
    assert cluster["corednsAddonOptions"]["enabled"] is False


def test_admin_roles_get_cluster_admin_access_entries(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    settings, captured, _ = planned
    entries = captured.inputs(EKS)["accessEntries"]
    assert sorted(e["principalArn"] for e in entries.values()) == sorted(settings.admin_role_arns)
    for entry in entries.values():
        assert list(entry["accessPolicies"].values()) == [
            {"policyArn": CLUSTER_ADMIN_POLICY, "accessScope": {"type": "cluster"}}
        ]


def test_public_endpoint_is_off_without_admin_cidrs_and_ci_runners_are_admitted() -> None:
    runner = "sg-0123456789abcdef0"
    settings = load_stack_file("production").cluster.model_copy(
        update={"public_access_cidrs": [], "api_client_security_group_ids": [runner]}
    )
    captured, _ = _plan(settings, "production")
    cluster = captured.inputs(EKS)
    control_plane_is_locked_down(cluster, [])
    assert cluster["endpointPublicAccess"] is False
    # The only way in from outside the cluster: the CI runner's group, on 443, to the cluster's group.
    (rule,) = [captured.inputs(r.type, r.name) for r in captured.of_type(INGRESS_RULE)]
    assert rule["referencedSecurityGroupId"] == runner
    assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)
    assert rule["securityGroupId"] == captured.outputs(EKS)["clusterSecurityGroupId"]


def test_no_ci_ingress_unless_configured(planned: tuple[ClusterSettings, Captured, dict[str, Any]]) -> None:
    settings, captured, _ = planned
    assert settings.api_client_security_group_ids == [], "the example stacks have no runner yet"
    assert not captured.of_type(INGRESS_RULE)


def test_control_plane_logs_go_to_an_encrypted_group_made_first(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, _ = planned
    group = captured.inputs(LOG_GROUP)
    assert group["name"] == f"/aws/eks/{NAME}/cluster", "EKS writes to exactly this group"
    assert group["kmsKeyId"] == LOGS_KEY
    assert group["retentionInDays"] == 90
    assert captured.one(LOG_GROUP).urn in captured.one(EKS).depends_on


def test_node_groups_follow_config(planned: tuple[ClusterSettings, Captured, dict[str, Any]]) -> None:
    settings, captured, _ = planned
    assert sorted(g.name for g in captured.of_type(NODE_GROUP)) == sorted(
        f"{NAME}-{g.name}" for g in settings.node_groups
    )
    for group in settings.node_groups:
        inputs = captured.inputs(NODE_GROUP, f"{NAME}-{group.name}")
        assert inputs["cluster"] == captured.one(EKS).urn, "the node group joins this cluster"
        assert inputs["instanceTypes"] == group.instance_types
        assert inputs["capacityType"] == group.capacity_type
        assert inputs["scalingConfig"] == {
            "minSize": group.min_size,
            "desiredSize": group.desired_size,
            "maxSize": group.max_size,
        }
        assert inputs["labels"] == group.labels
        template = captured.inputs(LAUNCH_TEMPLATE, f"{NAME}-{group.name}")
        assert template["blockDeviceMappings"][0]["ebs"]["volumeSize"] == group.disk_size_gib
        assert inputs["launchTemplate"]["version"] == "1", "a pinned template version, not $Latest"
        assert (
            captured.one(LAUNCH_TEMPLATE, f"{NAME}-{group.name}").urn
            in captured.one(NODE_GROUP, f"{NAME}-{group.name}").depends_on
        )


def test_nodes_are_private_and_require_imdsv2(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, _ = planned
    nodes_are_private_with_imdsv2(captured)


def test_node_role_has_exactly_the_node_policies(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    """The CNI policy is not on the node role: only aws-node gets it, through its own IRSA role."""
    _, captured, _ = planned
    role = captured.one(ROLE, f"{NAME}-node")
    trust = json.loads(captured.inputs(ROLE, role.name)["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]
    attached = sorted(
        captured.inputs(ATTACHMENT, a.name)["policyArn"]
        for a in captured.of_type(ATTACHMENT)
        if role.urn in a.depends_on
    )
    assert attached == [
        MANAGED + "AmazonEC2ContainerRegistryPullOnly",  # pulls images; lists and describes nothing
        MANAGED + "AmazonEKSWorkerNodePolicy",
        MANAGED + "AmazonSSMManagedInstanceCore",
    ]
    for group in captured.of_type(NODE_GROUP):
        assert role.urn in group.depends_on, "node groups launch with this role"


@pytest.mark.parametrize(
    ("addon", "service_account", "policy"),
    [
        ("vpc-cni", "aws-node", "AmazonEKS_CNI_Policy"),
        ("aws-ebs-csi-driver", "ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy"),
    ],
)
def test_addons_with_aws_permissions_use_irsa(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]], addon: str, service_account: str, policy: str
) -> None:
    _, captured, outputs = planned
    registration = captured.one(ADDON, f"{NAME}-{addon}")
    roles = [r for r in captured.of_type(ROLE) if r.urn in registration.depends_on]
    assert len(roles) == 1, "serviceAccountRoleArn is one IRSA role"
    assert_irsa_trust(
        captured.inputs(ROLE, roles[0].name)["assumeRolePolicy"],
        provider_arn=resolve(outputs["oidc_provider_arn"]),
        issuer=resolve(outputs["oidc_issuer"]),
        namespace="kube-system",
        account=service_account,
    )
    attached = [
        captured.inputs(ATTACHMENT, a.name)["policyArn"]
        for a in captured.of_type(ATTACHMENT)
        if roles[0].urn in a.depends_on
    ]
    assert attached == [MANAGED + policy]


def test_core_addons_are_ordered_around_the_nodes(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    """Networking before nodes join; coredns and the CSI driver (Deployments) once nodes exist."""
    _, captured, _ = planned
    addons = {captured.inputs(ADDON, a.name)["addonName"]: a for a in captured.of_type(ADDON)}
    assert sorted(addons) == ["aws-ebs-csi-driver", "coredns", "kube-proxy", "vpc-cni"]
    for addon in addons.values():
        assert captured.inputs(ADDON, addon.name)["clusterName"] == NAME
        assert captured.one(EKS).urn in addon.depends_on
    groups = captured.of_type(NODE_GROUP)
    for group in groups:
        assert addons["vpc-cni"].urn in group.depends_on
        assert addons["kube-proxy"].urn in group.depends_on
        assert group.urn in addons["coredns"].depends_on
        assert group.urn in addons["aws-ebs-csi-driver"].depends_on
    cni_config = json.loads(captured.inputs(ADDON, addons["vpc-cni"].name)["configurationValues"])
    assert cni_config == {"enableNetworkPolicy": "true"}, "NetworkPolicies need the CNI's policy agent"


def test_provider_uses_this_clusters_kubeconfig_once_nodes_are_ready(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    _, captured, outputs = planned
    provider = captured.one(K8S_PROVIDER)
    assert isinstance(outputs["provider"], pulumi.ProviderResource)
    assert is_secret(provider.inputs["kubeconfig"]), "the kubeconfig must be a secret input"
    kubeconfig = json.loads(captured.inputs(K8S_PROVIDER)["kubeconfig"])
    assert "--cluster-name" in kubeconfig["users"][0]["user"]["exec"]["args"]
    assert NAME in kubeconfig["users"][0]["user"]["exec"]["args"], "the provider talks to this cluster"
    for dependency in (*captured.of_type(NODE_GROUP), *captured.of_type(ADDON)):
        assert dependency.urn in provider.depends_on, f"provider does not wait for {dependency.name}"


def test_every_child_is_parented(planned: tuple[ClusterSettings, Captured, dict[str, Any]]) -> None:
    _, captured, _ = planned
    assert_children_parented(captured, COMPONENT)


def test_checks_catch_an_open_endpoint_and_imdsv1() -> None:
    """Mutations: an endpoint open to the internet, and a template that allows IMDSv1, must be caught."""
    settings = load_stack_file("staging").cluster
    captured, _ = _plan(settings)
    cluster = captured.inputs(EKS)
    with pytest.raises(AssertionError):
        control_plane_is_locked_down({**cluster, "publicAccessCidrs": ["0.0.0.0/0"]}, ["0.0.0.0/0"])
    with pytest.raises(AssertionError):
        control_plane_is_locked_down(
            {**cluster, "enabledClusterLogTypes": ["api"]}, settings.public_access_cidrs
        )
    template = captured.of_type(LAUNCH_TEMPLATE)[0]
    template.inputs["metadataOptions"]["httpTokens"] = "optional"
    with pytest.raises(AssertionError, match="httpTokens"):
        nodes_are_private_with_imdsv2(captured)


def test_node_groups_follow_the_cluster_version(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    """With a custom launch template pulumi-eks does not default a node group's version: without one,
    raising kubernetesVersion upgrades the control plane and leaves every node behind."""
    settings, captured, _ = planned
    for group in captured.of_type(NODE_GROUP):
        assert captured.inputs(NODE_GROUP, group.name)["version"] == settings.kubernetes_version


def test_node_groups_are_replaced_create_before_delete(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    """A change that replaces a node group (instance types, capacity type, subnets) creates the new one
    first; a fixed name would make EKS refuse the new group until the only one is gone."""
    settings, captured, _ = planned
    for group in settings.node_groups:
        registration = captured.one(NODE_GROUP, f"{NAME}-{group.name}")
        inputs = captured.inputs(NODE_GROUP, registration.name)
        assert "nodeGroupName" not in inputs
        assert inputs["nodeGroupNamePrefix"] == f"{NAME}-{group.name}-"
        assert registration.delete_before_replace is False


def test_node_group_updates_replace_one_node_at_a_time() -> None:
    """pulumi-eks has no updateConfig argument: a transform sets it on the aws.eks.NodeGroup the component
    creates, and leaves every other resource alone."""
    from components.cluster import NODE_UPDATE_CONFIG, node_group_update_config

    args = pulumi.ResourceTransformArgs(
        custom=True,
        type_="aws:eks/nodeGroup:NodeGroup",
        name="g",
        props={"clusterName": "c"},
        opts=pulumi.ResourceOptions(),
    )
    result = node_group_update_config(args)
    assert result is not None and result.props == {"clusterName": "c", "updateConfig": NODE_UPDATE_CONFIG}
    assert NODE_UPDATE_CONFIG == {"maxUnavailable": 1}
    other = pulumi.ResourceTransformArgs(
        custom=True, type_="aws:iam/role:Role", name="r", props={}, opts=pulumi.ResourceOptions()
    )
    assert node_group_update_config(other) is None


def test_policies_outlive_what_uses_them_on_destroy(
    planned: tuple[ClusterSettings, Captured, dict[str, Any]],
) -> None:
    """Destroy runs dependencies backwards: a node group or add-on that does not depend on its role's
    policy attachments may lose the permissions while it is still being drained."""
    _, captured, _ = planned
    node_role = captured.one(ROLE, f"{NAME}-node")
    node_attachments = [a.urn for a in captured.of_type(ATTACHMENT) if node_role.urn in a.depends_on]
    assert len(node_attachments) == 3
    for group in captured.of_type(NODE_GROUP):
        assert set(node_attachments) <= set(group.depends_on), group.name
    for addon in captured.of_type(ADDON):
        roles = [r.urn for r in captured.of_type(ROLE) if r.urn in addon.depends_on]
        for role in roles:
            attachments = [a.urn for a in captured.of_type(ATTACHMENT) if role in a.depends_on]
            assert attachments and set(attachments) <= set(addon.depends_on), addon.name


def test_addons_follow_the_cluster_version(planned: tuple[ClusterSettings, Captured, dict[str, Any]]) -> None:
    """An add-on without a version stays where it was installed when the control plane moves on; each one
    takes the version EKS names as the default for the cluster's Kubernetes version."""
    settings, captured, _ = planned
    for addon in captured.of_type(ADDON):
        inputs = captured.inputs(ADDON, addon.name)
        assert inputs["addonVersion"] == mock_addon_version(inputs["addonName"], settings.kubernetes_version)
