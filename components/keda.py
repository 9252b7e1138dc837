"""KEDA: the operator that scales the workers on the broker's queue length (the ScaledObject and its
TriggerAuthentication are the workloads', components/workloads/scaling.py).

The chart (kedacore/keda) and its images are pinned by the stack config. The operator reads the Redis
AUTH token from Secrets Manager with an IRSA role of its own that may read that one secret and decrypt
with the secrets key only through Secrets Manager; no Kubernetes Secret holds the token. The namespace
enforces Pod Security ``restricted`` (the chart's pods are non-root, read-only, no capabilities, seccomp
RuntimeDefault by default, and the values below keep them so) and denies all traffic but the flows
below.

Reaching Redis: ElastiCache admits only the EKS cluster security group on 6379 (components/cache.py),
which is the nodes' group; KEDA's pods, like the app's, use their node's network identity (no security
groups for pods), so the NetworkPolicy egress to the VPC on 6379 is all they need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.identity import read_secrets
from components.irsa import irsa_role, policy_document
from components.keda_settings import KedaSettings
from components.platform import restricted_namespace
from components.workloads.network_policies import HTTPS_PORT, PolicyPlan, peer_pods, policy_spec, tcp

KEDA_REPO = "https://kedacore.github.io/charts"
KEDA_NAMESPACE = "keda"
OPERATOR = "keda-operator"
OPERATOR_SERVICE_ACCOUNT = "keda-operator"
METRICS_APISERVER = "keda-operator-metrics-apiserver"
WEBHOOKS = "keda-admission-webhooks"
# The chart's ports: the operator's gRPC metrics service (the metrics apiserver asks it for values), the
# metrics apiserver's HTTPS (the kube API server calls it for external metrics), the webhooks' HTTPS.
OPERATOR_GRPC_PORT = 9666
METRICS_APISERVER_PORT = 6443
WEBHOOKS_PORT = 9443
DNS_PORT = 53
# The EKS API server's private endpoint listens on 443 inside the VPC.
KUBE_API_PORT = 443


def keda_values(role_arn: pulumi.Input[str], image_tag: str, replicas: int) -> dict[str, Any]:
    """The chart's values: IRSA for the operator, pinned images, the chart's secure contexts kept."""
    secure_container = {
        "capabilities": {"drop": ["ALL"]},
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    secure_pod = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    components = ("operator", "metricServer", "webhooks")
    budget = {"minAvailable": 1} if replicas > 1 else {}
    return {
        "image": {
            "keda": {"tag": image_tag},
            "metricsApiServer": {"tag": image_tag},
            "webhooks": {"tag": image_tag},
            # Pinned tags: IfNotPresent never runs a different image than the one named.
            "pullPolicy": "IfNotPresent",
        },
        "podIdentity": {
            "aws": {"irsa": {"enabled": True, "roleArn": role_arn, "stsRegionalEndpoints": "true"}}
        },
        # Only the leader of several operators works; the others take over when it goes.
        "operator": {"replicaCount": replicas},
        # One metrics apiserver: the external metrics API is served by one APIService endpoint.
        "metricsServer": {"replicaCount": 1},
        "webhooks": {"replicaCount": replicas},
        "podDisruptionBudget": {"operator": budget, "webhooks": budget},
        "securityContext": dict.fromkeys(components, secure_container),
        "podSecurityContext": dict.fromkeys(components, secure_pod),
        # Ours below are narrower than the chart's (which allow egress to every pod in the cluster).
        "networkPolicy": {"enabled": False},
        "prometheus": {"operator": {"enabled": False}, "metricServer": {"enabled": False}},
    }


def operator_policy(secret_arn: str, kms_key_arn: str, region: str) -> str:
    """GetSecretValue on the Redis AUTH secret only, and kms:Decrypt with its key via Secrets Manager."""
    return policy_document(read_secrets([secret_arn], kms_key_arn, region))


def keda_policy_plans(vpc_cidr: str, redis_port: pulumi.Input[int]) -> list[PolicyPlan]:
    """Default-deny in the namespace; the few flows KEDA needs."""
    net = k8s.networking.v1
    dns = net.NetworkPolicyEgressRuleArgs(
        to=[peer_pods("kube-system", {"k8s-app": "kube-dns"})],
        ports=[net.NetworkPolicyPortArgs(protocol=p, port=DNS_PORT) for p in ("UDP", "TCP")],
    )
    vpc = [net.NetworkPolicyPeerArgs(ip_block=net.IPBlockArgs(cidr=vpc_cidr))]
    kube_api = net.NetworkPolicyEgressRuleArgs(to=vpc, ports=[tcp(KUBE_API_PORT)])
    operator = peer_pods(KEDA_NAMESPACE, {"app": OPERATOR})
    metrics_apiserver = peer_pods(KEDA_NAMESPACE, {"app": METRICS_APISERVER})
    return [
        PolicyPlan("default-deny", {}, ingress=[], egress=[]),
        PolicyPlan(
            "operator",
            {"app": OPERATOR},
            ingress=[
                net.NetworkPolicyIngressRuleArgs(from_=[metrics_apiserver], ports=[tcp(OPERATOR_GRPC_PORT)])
            ],
            egress=[
                dns,
                # The broker (ElastiCache, in the VPC) for the queue length.
                net.NetworkPolicyEgressRuleArgs(to=vpc, ports=[tcp(redis_port)]),
                # Secrets Manager and STS (regional endpoints, public), and the kube API server.
                net.NetworkPolicyEgressRuleArgs(
                    to=[net.NetworkPolicyPeerArgs(ip_block=net.IPBlockArgs(cidr="0.0.0.0/0"))],
                    ports=[tcp(HTTPS_PORT)],
                ),
            ],
        ),
        PolicyPlan(
            "metrics-apiserver",
            {"app": METRICS_APISERVER},
            # The kube API server (its ENIs are in the VPC) proxies external-metrics requests here.
            ingress=[net.NetworkPolicyIngressRuleArgs(from_=vpc, ports=[tcp(METRICS_APISERVER_PORT)])],
            egress=[
                dns,
                kube_api,
                net.NetworkPolicyEgressRuleArgs(to=[operator], ports=[tcp(OPERATOR_GRPC_PORT)]),
            ],
        ),
        PolicyPlan(
            "admission-webhooks",
            {"app": WEBHOOKS},
            ingress=[net.NetworkPolicyIngressRuleArgs(from_=vpc, ports=[tcp(WEBHOOKS_PORT)])],
            egress=[dns, kube_api],
        ),
    ]


@dataclass(frozen=True)
class KedaArgs:
    settings: KedaSettings
    provider: k8s.Provider
    region: str
    # IRSA for the operator, through the cluster's OIDC provider.
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    # The one secret the operator reads (the Redis AUTH token) and the key it is encrypted with.
    redis_auth_secret_arn: pulumi.Input[str]
    secrets_kms_key_arn: pulumi.Input[str]
    # Egress to the broker is allowed only into the VPC.
    vpc_cidr: str
    redis_port: pulumi.Input[int]
    # Operator and webhook replicas; two or more survive a node drain.
    replicas: int = 2


class Keda(pulumi.ComponentResource):
    """The KEDA operator, metrics apiserver and admission webhooks in their own restricted namespace."""

    namespace: str
    role_arn: pulumi.Output[str]
    # What custom resources of KEDA's kinds must wait for (the release installs the CRDs).
    crd_dependencies: Sequence[pulumi.Resource]

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:keda:Keda", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)

        role = irsa_role(
            f"{name}-keda-operator",
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer=args.oidc_issuer,
            namespace=KEDA_NAMESPACE,
            service_account=OPERATOR_SERVICE_ACCOUNT,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-keda-operator-secret",
            role=role.id,
            policy=pulumi.Output.all(args.redis_auth_secret_arn, args.secrets_kms_key_arn).apply(
                lambda v: operator_policy(str(v[0]), str(v[1]), args.region)
            ),
            opts=child,
        )
        namespace = k8s.core.v1.Namespace(
            f"{name}-keda-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=KEDA_NAMESPACE, labels=restricted_namespace()),
            opts=on_cluster,
        )
        in_ns = on_cluster.merge(pulumi.ResourceOptions(depends_on=[namespace]))
        for plan in keda_policy_plans(args.vpc_cidr, args.redis_port):
            k8s.networking.v1.NetworkPolicy(
                f"{name}-keda-netpol-{plan.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=KEDA_NAMESPACE),
                spec=policy_spec(plan),
                opts=in_ns,
            )
        release = k8s.helm.v3.Release(
            f"{name}-keda",
            name="keda",
            chart="keda",
            version=args.settings.chart_version,
            namespace=namespace.metadata.name,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KEDA_REPO),
            values=keda_values(role.arn, args.settings.image_tag, args.replicas),
            # A failed upgrade rolls back instead of leaving a half-installed operator.
            atomic=True,
            cleanup_on_fail=True,
            opts=on_cluster,
        )

        self.namespace = KEDA_NAMESPACE
        self.role_arn = role.arn
        self.crd_dependencies = [release]
        self.register_outputs({"namespace": self.namespace, "role_arn": self.role_arn})
