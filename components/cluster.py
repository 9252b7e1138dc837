"""The EKS cluster: private nodes, encrypted secrets, audited control plane, IRSA, core add-ons.

Built on pulumi-eks's ``Cluster`` and ``ManagedNodeGroup``. Every Kubernetes resource in the project
goes through ``cluster.provider``, built from this cluster's kubeconfig, never the ambient one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.cluster_settings import ClusterSettings, NodeGroupSettings
from components.irsa import irsa_role, service_trust_policy

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
MANAGED_POLICY = "arn:aws:iam::aws:policy/"
# The CNI permissions go to the aws-node service account (IRSA), not to every pod through the node role.
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    # Pull only (ecr:BatchGetImage, GetDownloadUrlForLayer, GetAuthorizationToken): ReadOnly would also let
    # anything on a node list and describe every repository and image in the account.
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)
ROOT_DEVICE = "/dev/xvda"
# A rolling node update takes one node out of service at a time (EKS surges new nodes first).
NODE_UPDATE_CONFIG = {"maxUnavailable": 1}
NODE_GROUP_TYPE = "aws:eks/nodeGroup:NodeGroup"


def node_group_update_config(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """Set updateConfig on the aws.eks.NodeGroup pulumi-eks's ManagedNodeGroup creates (it has no such
    argument); transforms reach the children of remote components."""
    if args.type_ != NODE_GROUP_TYPE:
        return None
    return pulumi.ResourceTransformResult(
        props={**args.props, "updateConfig": NODE_UPDATE_CONFIG}, opts=args.opts
    )


@dataclass(frozen=True)
class ClusterArgs:
    settings: ClusterSettings
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    secrets_kms_key_arn: pulumi.Input[str]
    logs_kms_key_arn: pulumi.Input[str]
    log_retention_days: int = 90
    # Production: EKS refuses to delete the cluster and the engine refuses to delete or replace it.
    protect: bool = False


class Cluster(pulumi.ComponentResource):
    """EKS with managed node groups in private subnets and the core add-ons."""

    name: str
    provider: k8s.Provider
    security_group_id: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:cluster:Cluster", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        self._kubernetes_version = settings.kubernetes_version

        # EKS would create this group itself, unencrypted and kept forever; audit logs deserve better.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=f"/aws/eks/{name}/cluster",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_kms_key_arn,
            opts=self._child,
        )
        cluster = eks.Cluster(
            f"{name}-eks",
            name=name,
            version=settings.kubernetes_version,
            deletion_protection=args.protect,
            # Explicit: EKS's default (EXTENDED) bills the extended-support rate once the version ages.
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=settings.upgrade_policy),
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            endpoint_private_access=True,
            endpoint_public_access=bool(settings.public_access_cidrs),
            public_access_cidrs=settings.public_access_cidrs or None,
            node_associate_public_ip_address=False,
            skip_default_node_group=True,
            # Control plane and managed nodes share the EKS-created cluster security group: one group
            # for the data stores to admit.
            skip_default_security_groups=True,
            encryption_config_key_arn=args.secrets_kms_key_arn,
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            create_oidc_provider=True,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries={
                f"admin-{i}": eks.AccessEntryArgs(
                    principal_arn=arn,
                    access_policies={
                        "cluster-admin": eks.AccessPolicyAssociationArgs(
                            policy_arn=CLUSTER_ADMIN_POLICY,
                            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                        )
                    },
                )
                for i, arn in enumerate(settings.admin_role_arns)
            },
            # The core add-ons are declared below as EKS add-ons with explicit ordering (and IRSA for
            # vpc-cni); pulumi-eks must not create a second copy of any of them.
            use_default_vpc_cni=True,
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=False),
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            opts=self._child.merge(pulumi.ResourceOptions(depends_on=[log_group], protect=args.protect)),
        )
        self.name = name
        self.security_group_id = cluster.cluster_security_group_id
        # The endpoint is private: CI reaches it from its runners in the VPC (bootstrap/runners.py).
        for index, client_group in enumerate(settings.api_client_security_group_ids):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-client-{index}",
                security_group_id=self.security_group_id,
                referenced_security_group_id=client_group,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description="CI runner to the Kubernetes API",
                opts=self._child,
            )
        self.oidc_provider_arn = cluster.oidc_provider_arn
        self.oidc_issuer = cluster.oidc_issuer
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)

        networking = self._networking_addons(cluster)
        node_role, node_policies = self._node_role()
        groups = [
            self._node_group(cluster, node_role, group, args, after=[*networking, *node_policies])
            for group in settings.node_groups
        ]
        scheduled = self._scheduled_addons(cluster, groups)
        # Everything applied through this provider waits for nodes that can run pods (networking,
        # DNS, volumes): a Helm release or Deployment never starts against an empty cluster.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=self._child.merge(pulumi.ResourceOptions(depends_on=[*networking, *groups, *scheduled])),
        )
        self.register_outputs(
            {
                "name": self.name,
                "security_group_id": self.security_group_id,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_issuer": self.oidc_issuer,
                "kubeconfig": self.kubeconfig,
            }
        )

    def _node_role(self) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        """The nodes' role and its policy attachments (what uses the role must depend on both)."""
        role = aws.iam.Role(
            f"{self._name}-node",
            assume_role_policy=service_trust_policy("ec2.amazonaws.com"),
            opts=self._child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{self._name}-node-{policy}",
                role=role.name,
                policy_arn=MANAGED_POLICY + policy,
                opts=self._child,
            )
            for policy in NODE_POLICIES
        ]
        return role, attachments

    def _node_group(
        self,
        cluster: eks.Cluster,
        role: aws.iam.Role,
        group: NodeGroupSettings,
        args: ClusterArgs,
        *,
        after: Sequence[pulumi.Resource],
    ) -> eks.ManagedNodeGroup:
        template = aws.ec2.LaunchTemplate(
            f"{self._name}-{group.name}",
            # IMDSv2 only, one hop: pods cannot reach the node's credentials; they use IRSA.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=ROOT_DEVICE,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=group.disk_size_gib,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            opts=self._child,
        )
        return eks.ManagedNodeGroup(
            f"{self._name}-{group.name}",
            cluster=cluster,
            # A prefix, not a name: a change that replaces the group (instance types, capacity type,
            # subnets) creates the new group before deleting the old, instead of failing on the name.
            node_group_name_prefix=f"{self._name}-{group.name}-",
            # With a custom launch template pulumi-eks leaves the version unset, and the nodes would stay
            # behind when kubernetesVersion is raised; EKS rolls them once the control plane is upgraded.
            version=args.settings.kubernetes_version,
            node_role_arn=role.arn,
            subnet_ids=args.private_subnet_ids,
            instance_types=group.instance_types,
            capacity_type=group.capacity_type,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=group.min_size, desired_size=group.desired_size, max_size=group.max_size
            ),
            labels=group.labels,
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            # The autoscaler owns the size after creation; a later `pulumi up` must not reset it.
            ignore_scaling_changes=True,
            # Nodes boot with the managed CNI (and its IRSA role) already in place; on destroy the node
            # role's policies go only after the nodes.
            opts=self._child.merge(
                pulumi.ResourceOptions(depends_on=list(after), transforms=[node_group_update_config])
            ),
        )

    def _addon_role(
        self, addon: str, service_account: str, policy: str
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
        """An IRSA role for an add-on's kube-system service account, with one AWS managed policy."""
        role = irsa_role(
            f"{self._name}-{addon}",
            oidc_provider_arn=self.oidc_provider_arn,
            oidc_issuer=self.oidc_issuer,
            namespace="kube-system",
            service_account=service_account,
            opts=self._child,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{self._name}-{addon}", role=role.name, policy_arn=MANAGED_POLICY + policy, opts=self._child
        )
        return role, attachment

    def _networking_addons(self, cluster: eks.Cluster) -> list[aws.eks.Addon]:
        """vpc-cni and kube-proxy: daemons every node needs, installed before the nodes join."""
        after_cluster = self._child.merge(pulumi.ResourceOptions(depends_on=[cluster]))
        vpc_cni = self._addon(
            "vpc-cni",
            after_cluster,
            self._addon_role("vpc-cni", "aws-node", "AmazonEKS_CNI_Policy"),
            # NetworkPolicies are enforced by the VPC CNI's network policy agent.
            configuration={"enableNetworkPolicy": "true"},
        )
        return [vpc_cni, self._addon("kube-proxy", after_cluster)]

    def _scheduled_addons(
        self, cluster: eks.Cluster, groups: Sequence[eks.ManagedNodeGroup]
    ) -> list[aws.eks.Addon]:
        """coredns and the EBS CSI driver run as Deployments: they need nodes to schedule on."""
        after_nodes = self._child.merge(pulumi.ResourceOptions(depends_on=[cluster, *groups]))
        return [
            self._addon("coredns", after_nodes),
            self._addon(
                "aws-ebs-csi-driver",
                after_nodes,
                self._addon_role("ebs-csi", "ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy"),
            ),
        ]

    def _addon(
        self,
        addon: str,
        opts: pulumi.ResourceOptions,
        service_account_role: tuple[aws.iam.Role, aws.iam.RolePolicyAttachment] | None = None,
        configuration: dict[str, str] | None = None,
    ) -> aws.eks.Addon:
        role, attachment = service_account_role or (None, None)
        # EKS's default version of the add-on for the cluster's Kubernetes version: without one, an
        # add-on stays at the version it was installed with when the control plane is upgraded.
        version = aws.eks.get_addon_version_output(
            addon_name=addon,
            kubernetes_version=self._kubernetes_version,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        return aws.eks.Addon(
            f"{self._name}-{addon}",
            cluster_name=self.name,
            addon_name=addon,
            addon_version=version.version,
            service_account_role_arn=role.arn if role else None,
            configuration_values=json.dumps(configuration) if configuration else None,
            # Take over the self-managed copies EKS bootstrapped.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="PRESERVE",
            # On destroy, the add-on goes before the permissions it runs with.
            opts=opts.merge(pulumi.ResourceOptions(depends_on=[attachment] if attachment else [])),
        )
