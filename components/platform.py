"""Cluster add-ons the workloads rely on: cert-manager, the edge (Envoy Gateway behind an AWS NLB, see
components/edge.py), metrics-server.

Every chart comes from its official repository at the version pinned in the stack config. The order
matters and is explicit: cert-manager (with Gateway API support) waits for the Gateway API CRDs
(components/edge_crds.py), without which it does not start; the ClusterIssuers are custom resources, so
they wait for the cert-manager release that installs their CRDs; the edge's Certificate waits for the
issuer; the workloads' routes wait for the Gateway (see ``Platform.ingress_dependencies``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.edge import EDGE_NAMESPACE, GATEWAY_NAME, HTTP_LISTENER, Edge, EdgeArgs
from components.edge_crds import EdgeCrds, EdgeCrdsArgs
from components.edge_settings import EdgeSettings
from components.irsa import irsa_trust_policy
from components.platform_settings import PlatformSettings

CERT_MANAGER_REPO = "https://charts.jetstack.io"
METRICS_SERVER_REPO = "https://kubernetes-sigs.github.io/metrics-server/"

CERT_MANAGER_NAMESPACE = "cert-manager"
CERT_MANAGER_SERVICE_ACCOUNT = "cert-manager"
ACME_SERVERS = {
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "letsencrypt-production": "https://acme-v02.api.letsencrypt.org/directory",
}


def restricted_namespace(enforce: str = "restricted") -> dict[str, str]:
    """Pod Security labels: enforce ``enforce``, and always warn and audit against ``restricted``."""
    return {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


def acme_solver(settings: PlatformSettings, region: str) -> dict[str, Any]:
    """DNS-01 through Route 53 (IRSA, ambient credentials) with a hosted zone, HTTP-01 otherwise."""
    if settings.hosted_zone_id:
        return {
            "dns01": {"route53": {"region": region, "hostedZoneID": settings.hosted_zone_id}},
            "selector": {"dnsZones": [settings.domain]},
        }
    # HTTP-01 through the edge's plain-HTTP listener: cert-manager attaches a solver HTTPRoute (more
    # specific than the redirect) next to the Certificate, in the Gateway's namespace.
    return {
        "http01": {
            "gatewayHTTPRoute": {
                "parentRefs": [
                    {
                        "group": "gateway.networking.k8s.io",
                        "kind": "Gateway",
                        "name": GATEWAY_NAME,
                        "namespace": EDGE_NAMESPACE,
                        "sectionName": HTTP_LISTENER,
                    }
                ]
            }
        }
    }


def cluster_issuer_spec(issuer: str, settings: PlatformSettings, region: str) -> dict[str, Any]:
    return {
        "acme": {
            "server": ACME_SERVERS[issuer],
            "email": settings.acme_email,
            # cert-manager keeps the ACME account key here (in its own namespace); not an app secret.
            "privateKeySecretRef": {"name": f"{issuer}-account-key"},
            "solvers": [acme_solver(settings, region)],
        }
    }


def route53_policy(hosted_zone_id: str) -> str:
    """The least cert-manager needs for DNS-01 in one zone. No ``route53:ListHostedZonesByName`` (on
    ``*``, the only resource it takes): cert-manager looks the zone up by name only when the issuer does
    not give ``hostedZoneID``, and ours always does."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "route53:GetChange", "Resource": "arn:aws:route53:::change/*"},
                {
                    "Effect": "Allow",
                    "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                    "Resource": f"arn:aws:route53:::hostedzone/{hosted_zone_id}",
                },
            ],
        }
    )


def cert_manager_values(role_arn: pulumi.Input[str] | None, replicas: int) -> dict[str, Any]:
    values: dict[str, Any] = {
        # The chart installs and upgrades the CRDs; keep them when the release is removed, so deleting
        # the release cannot cascade into deleting every Certificate in the cluster.
        "crds": {"enabled": True, "keep": True},
        "replicaCount": replicas,
        "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": 1},
        # The webhook answers every Certificate/Issuer admission (one replica down: those writes fail) and
        # the cainjector keeps the webhooks' CA bundles current: as many replicas as the controller.
        "webhook": {
            "replicaCount": replicas,
            "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": 1},
        },
        "cainjector": {
            "replicaCount": replicas,
            "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": 1},
        },
        # Leader election in its own namespace instead of kube-system (narrower RBAC).
        "global": {"leaderElection": {"namespace": CERT_MANAGER_NAMESPACE}},
        # Gateway API support: the HTTP-01 solver attaches HTTPRoutes to the edge's Gateway.
        "config": {
            "apiVersion": "controller.config.cert-manager.io/v1alpha1",
            "kind": "ControllerConfiguration",
            "enableGatewayAPI": True,
        },
        "prometheus": {"enabled": True, "servicemonitor": {"enabled": False}},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    }
    if role_arn is not None:
        values["serviceAccount"] = {"annotations": {"eks.amazonaws.com/role-arn": role_arn}}
    return values


@dataclass(frozen=True)
class PlatformArgs:
    settings: PlatformSettings
    # The cluster's provider: every Kubernetes object and Helm release is applied with it.
    provider: k8s.Provider
    region: str
    # IRSA for cert-manager's Route 53 access (used only when settings.hosted_zone_id is set).
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    # The edge: its settings, the API's public name and the namespace whose routes it serves.
    edge: EdgeSettings
    hostname: str
    app_namespace: str
    # For the edge namespace's NetworkPolicies: the VPC (the Kubernetes API's private endpoint and its
    # webhook calls) and the Prometheus pods allowed to scrape the edge.
    vpc_cidr: str
    monitoring_namespace: str
    prometheus_labels: Mapping[str, str]
    # Controller replicas (Envoy Gateway and cert-manager); two or more survive a node drain.
    replicas: int = 2


class Platform(pulumi.ComponentResource):
    """cert-manager with both Let's Encrypt ClusterIssuers, the edge (Envoy Gateway), metrics-server."""

    cluster_issuer: str
    edge: Edge
    ingress_namespace: str
    cert_manager_role_arn: pulumi.Output[str] | None
    ingress_dependencies: list[pulumi.Resource]

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:platform:Platform", name, None, opts)
        self._name = name
        self._on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        settings = args.settings

        zone = settings.hosted_zone_id
        role_arn = self._cert_manager_role(args, zone) if zone else None
        # First: cert-manager with Gateway API support does not start without the Gateway API CRDs.
        edge_crds = EdgeCrds(
            f"{name}-edge-crds",
            EdgeCrdsArgs(provider=args.provider, chart_version=args.edge.envoy_gateway_chart_version),
            opts=pulumi.ResourceOptions(parent=self),
        )
        cert_manager = self._release(
            "cert-manager",
            CERT_MANAGER_NAMESPACE,
            restricted_namespace(),
            chart="cert-manager",
            version=settings.cert_manager_chart_version,
            repo=CERT_MANAGER_REPO,
            values=cert_manager_values(role_arn, args.replicas),
            depends_on=[edge_crds.release],
        )
        issuers = {
            issuer: k8s.apiextensions.CustomResource(
                f"{name}-{issuer}",
                api_version="cert-manager.io/v1",
                kind="ClusterIssuer",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=issuer),
                spec=cluster_issuer_spec(issuer, settings, args.region),
                # The ClusterIssuer CRD arrives with the release; applying earlier fails.
                opts=self._on_cluster.merge(pulumi.ResourceOptions(depends_on=[cert_manager])),
            )
            for issuer in ACME_SERVERS
        }
        edge = Edge(
            f"{name}-edge",
            EdgeArgs(
                settings=args.edge,
                provider=args.provider,
                crds=edge_crds,
                hostname=args.hostname,
                app_namespace=args.app_namespace,
                cluster_issuer=settings.cluster_issuer,
                cert_manager=[cert_manager, issuers[settings.cluster_issuer]],
                vpc_cidr=args.vpc_cidr,
                # Without a hosted zone the issuers solve HTTP-01, whose solver pods run in the edge's
                # namespace (next to the Certificate) behind the Gateway's HTTP listener.
                acme_http01=zone is None,
                monitoring_namespace=args.monitoring_namespace,
                prometheus_labels=args.prometheus_labels,
                controller_replicas=args.replicas,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # HPAs read CPU and memory from the metrics API, which EKS does not install by itself.
        k8s.helm.v3.Release(
            f"{name}-metrics-server",
            name="metrics-server",
            chart="metrics-server",
            version=settings.metrics_server_chart_version,
            namespace="kube-system",
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=METRICS_SERVER_REPO),
            values={"replicas": args.replicas, "podDisruptionBudget": {"enabled": True, "minAvailable": 1}},
            atomic=True,
            opts=self._on_cluster,
        )

        self.cluster_issuer = settings.cluster_issuer
        self.edge = edge
        self.ingress_namespace = edge.namespace
        self.cert_manager_role_arn = role_arn
        self.ingress_dependencies = edge.route_dependencies
        self.register_outputs(
            {
                "cluster_issuer": self.cluster_issuer,
                "gateway": edge.gateway_name,
                "cert_manager_role_arn": role_arn,
            }
        )

    def _release(
        self,
        role: str,
        namespace: str,
        labels: dict[str, str],
        *,
        chart: str,
        version: str,
        repo: str,
        values: Mapping[str, Any],
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> k8s.helm.v3.Release:
        """A chart in its own namespace, which is created here (labelled) rather than by Helm."""
        ns = k8s.core.v1.Namespace(
            f"{self._name}-{role}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace, labels=labels),
            opts=self._on_cluster,
        )
        return k8s.helm.v3.Release(
            f"{self._name}-{role}",
            name=role,
            chart=chart,
            version=version,
            namespace=ns.metadata.name,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo),
            values=values,
            # A failed upgrade rolls back instead of leaving a half-installed controller.
            atomic=True,
            cleanup_on_fail=True,
            opts=self._on_cluster.merge(pulumi.ResourceOptions(depends_on=list(depends_on))),
        )

    def _cert_manager_role(self, args: PlatformArgs, zone: str) -> pulumi.Output[str]:
        trust = pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer).apply(
            lambda v: irsa_trust_policy(v[0], v[1], CERT_MANAGER_NAMESPACE, CERT_MANAGER_SERVICE_ACCOUNT)
        )
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(f"{self._name}-cert-manager", assume_role_policy=trust, opts=child)
        aws.iam.RolePolicy(
            f"{self._name}-cert-manager-route53", role=role.id, policy=route53_policy(zone), opts=child
        )
        return role.arn
