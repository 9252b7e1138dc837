"""EKS: encrypted secrets, audited control plane, restricted endpoint, private IMDSv2 nodes.

Both forms are covered: the offline plan sees pulumi-eks's remote component ``eks:index:Cluster``
(and ``eks:index:ManagedNodeGroup``) with the component's inputs; a real ``pulumi preview`` also shows
the children pulumi-eks creates (``aws:eks/cluster:Cluster``, ``aws:eks/nodeGroup:NodeGroup``,
``aws:ec2/launchTemplate:LaunchTemplate``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from components.cluster_settings import KUBERNETES_VERSIONS
from policy.core import (
    Resource,
    StackResource,
    by_type,
    dicts,
    get,
    is_false,
    is_true,
    present,
    resource_policy,
    stack_policy,
    strings,
)
from policy.settings import PolicySettings

# The remediation names the default range; a stack's own list comes from eksAllowedVersions.
DEFAULT_VERSIONS = f"{KUBERNETES_VERSIONS[0]}-{KUBERNETES_VERSIONS[-1]}"
COMPONENT = "eks:index:Cluster"
CLUSTER = "aws:eks/cluster:Cluster"
MANAGED_NODE_GROUP = "eks:index:ManagedNodeGroup"
SELF_MANAGED_NODE_GROUPS = ("eks:index:NodeGroup", "eks:index:NodeGroupV2")
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


def _secrets_encryption(r: Resource) -> Iterator[str]:
    if r.type == COMPONENT:
        if not present(r.props.get("encryptionConfigKeyArn")):
            yield f"EKS cluster {r.name} does not envelope-encrypt Kubernetes secrets (encryptionConfigKeyArn)."
        return
    configs = dicts(r.props.get("encryptionConfig"))
    if not any(
        present(get(c, "provider.keyArn")) and "secrets" in strings(c.get("resources")) for c in configs
    ):
        yield f"EKS cluster {r.name} has no encryptionConfig with a KMS key for the 'secrets' resource."


def _logging(r: Resource) -> Iterator[str]:
    enabled = set(strings(r.props.get("enabledClusterLogTypes")))
    missing = [t for t in r.settings.eks_required_log_types if t not in enabled]
    if missing:
        yield f"EKS cluster {r.name} does not send the {', '.join(missing)} control-plane log(s) to CloudWatch."


def _endpoint(r: Resource) -> Iterator[str]:
    props: Any = r.props if r.type == COMPONENT else get(r.props, "vpcConfig")
    if is_false(get(props, "endpointPublicAccess")):
        return
    cidrs = strings(get(props, "publicAccessCidrs"))
    if not cidrs:
        yield f"EKS cluster {r.name} has a public API endpoint open to 0.0.0.0/0 (no publicAccessCidrs)."
    elif OPEN_CIDRS.intersection(cidrs):
        yield f"EKS cluster {r.name} allows its public API endpoint from {', '.join(sorted(OPEN_CIDRS.intersection(cidrs)))}."


def _private_nodes(r: Resource) -> Iterator[str]:
    if r.type == LAUNCH_TEMPLATE:
        if any(is_true(n.get("associatePublicIpAddress")) for n in dicts(r.props.get("networkInterfaces"))):
            yield f"Launch template {r.name} gives nodes a public IP address."
        return
    if r.type == COMPONENT and not present(r.props.get("privateSubnetIds")):
        yield f"EKS cluster {r.name} has no privateSubnetIds: nodes and control-plane ENIs go to public subnets."
    default_group = r.type in SELF_MANAGED_NODE_GROUPS or not is_true(r.props.get("skipDefaultNodeGroup"))
    if default_group and not is_false(r.props.get("nodeAssociatePublicIpAddress")):
        yield f"{r.name} creates self-managed nodes that may get public IPs (nodeAssociatePublicIpAddress)."


def _version(r: Resource) -> Iterator[str]:
    allowed = r.settings.eks_allowed_versions
    version = r.props.get("version")
    if version is None and r.type == MANAGED_NODE_GROUP:
        # Not judged here: pulumi-eks gives a node group its cluster's version only when it builds the
        # launch template itself; with a custom template the nodes stay at the version they were created
        # with, so the Cluster component always sets it (tests/infra/test_cluster.py).
        return
    if str(version) not in allowed:
        yield f"{r.name} runs Kubernetes {version or '(unpinned)'}; supported versions are {', '.join(allowed)}."


def _imdsv2(r: Resource) -> Iterator[str]:
    if r.type == LAUNCH_TEMPLATE:
        if get(r.props, "metadataOptions.httpTokens") != "required":
            yield f"Launch template {r.name} allows IMDSv1 (metadataOptions.httpTokens is not 'required')."
    elif r.type == MANAGED_NODE_GROUP:
        if not is_true(r.props.get("enableIMDSv2")) and not present(r.props.get("launchTemplate")):
            yield f"Managed node group {r.name} does not require IMDSv2 (enableIMDSv2)."
    elif r.type == NODE_GROUP:
        if not present(r.props.get("launchTemplate")):
            yield f"Node group {r.name} has no launch template, so its instances accept IMDSv1."
    elif r.type in SELF_MANAGED_NODE_GROUPS or not is_true(r.props.get("skipDefaultNodeGroup")):
        yield f"{r.name} creates self-managed nodes whose instance metadata options this program cannot pin to IMDSv2."


def _node_groups_in_private_subnets(
    resources: Sequence[StackResource], _settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    public = {s for c in by_type(resources, COMPONENT) for s in strings(c.props.get("publicSubnetIds"))}
    for group in by_type(resources, MANAGED_NODE_GROUP, NODE_GROUP):
        exposed = sorted(public.intersection(strings(group.props.get("subnetIds"))))
        if exposed:
            yield (
                f"Node group {group.name} places nodes in the cluster's public subnet(s) {', '.join(exposed)}.",
                group.urn,
            )


POLICIES = [
    resource_policy(
        "eks-secrets-encryption",
        severity="high",
        controls=(
            "CIS-EKS 5.3.1",
            "PCI-DSS 3.5.1",
            "SOC2 CC6.1",
        ),
        types=[COMPONENT, CLUSTER],
        description="Kubernetes secrets are stored in etcd in plain base64 unless envelope-encrypted with KMS.",
        remediation="set encryptionConfigKeyArn (eks.Cluster) / encryptionConfig.provider.keyArn with resources=['secrets'] to the stack's EKS KMS key.",
        check=_secrets_encryption,
    ),
    resource_policy(
        "eks-control-plane-logging",
        severity="high",
        controls=(
            "CIS-EKS 2.1.1",
            "PCI-DSS 10.2.1",
            "SOC2 CC7.2",
        ),
        types=[COMPONENT, CLUSTER],
        description="Without control-plane logs there is no audit trail of who did what in the cluster.",
        remediation="set enabledClusterLogTypes to include api, audit and authenticator (knob eksRequiredLogTypes).",
        check=_logging,
    ),
    resource_policy(
        "eks-public-endpoint-restricted",
        severity="critical",
        controls=(
            "CIS-EKS 5.4.1",
            "CIS-EKS 5.4.2",
            "PCI-DSS 1.4.4",
            "SOC2 CC6.6",
        ),
        stack_key="cluster.publicAccessCidrs",
        types=[COMPONENT, CLUSTER],
        description="A public Kubernetes API endpoint open to the internet invites credential stuffing and exploits.",
        remediation="set endpointPublicAccess=false, or publicAccessCidrs to the operators' CIDRs (never 0.0.0.0/0 or ::/0).",
        check=_endpoint,
    ),
    resource_policy(
        "eks-nodes-private",
        severity="critical",
        controls=(
            "CIS-EKS 5.4.3",
            "SOC2 CC6.6",
        ),
        types=[COMPONENT, LAUNCH_TEMPLATE, *SELF_MANAGED_NODE_GROUPS],
        description="Worker nodes with public IPs are directly reachable from the internet.",
        remediation="pass privateSubnetIds, set skipDefaultNodeGroup=true (or nodeAssociatePublicIpAddress=false) and run nodes in private subnets without public IPs.",
        check=_private_nodes,
    ),
    resource_policy(
        "eks-supported-version",
        severity="medium",
        controls=(
            "PCI-DSS 6.3.3",
            "SOC2 CC7.1",
        ),
        stack_key="cluster.kubernetesVersion",
        types=[COMPONENT, CLUSTER, MANAGED_NODE_GROUP],
        description="An unpinned or out-of-support Kubernetes version gets no security fixes (or upgrades unplanned).",
        remediation=f"pin version to one of eksAllowedVersions ({DEFAULT_VERSIONS} by default).",
        check=_version,
    ),
    resource_policy(
        "eks-imdsv2-required",
        severity="high",
        controls=(
            "CIS-AWS 5.6",
            "SOC2 CC6.1",
        ),
        types=[COMPONENT, MANAGED_NODE_GROUP, NODE_GROUP, LAUNCH_TEMPLATE, *SELF_MANAGED_NODE_GROUPS],
        description="IMDSv1 lets any SSRF in a pod steal the node's IAM credentials.",
        remediation="use eks.ManagedNodeGroup with enableIMDSv2=true (skipDefaultNodeGroup=true on the cluster), or a launch template with metadataOptions.httpTokens='required'.",
        check=_imdsv2,
    ),
    stack_policy(
        "eks-node-groups-private-subnets",
        severity="high",
        controls=(
            "CIS-EKS 5.4.3",
            "SOC2 CC6.6",
        ),
        description="A node group placed in the cluster's public subnets exposes the nodes to the internet.",
        remediation="pass the private subnet IDs as the node group's subnetIds.",
        check=_node_groups_in_private_subnets,
    ),
]
