"""Cluster add-ons the workloads rely on: cert-manager, ingress-nginx behind an AWS NLB, metrics-server.

Every chart comes from its official repository at the version pinned in the stack config. The order
matters and is explicit: the ClusterIssuers are custom resources, so they wait for the cert-manager
release that installs their CRDs; the workloads' Ingress waits for ingress-nginx (whose admission
webhook validates it) and for the issuer (see ``Platform.ingress_dependencies``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.irsa import irsa_trust_policy
from components.platform_settings import PlatformSettings

CERT_MANAGER_REPO = "https://charts.jetstack.io"
INGRESS_NGINX_REPO = "https://kubernetes.github.io/ingress-nginx"
METRICS_SERVER_REPO = "https://kubernetes-sigs.github.io/metrics-server/"

CERT_MANAGER_NAMESPACE = "cert-manager"
CERT_MANAGER_SERVICE_ACCOUNT = "cert-manager"
INGRESS_NAMESPACE = "ingress-nginx"
INGRESS_CLASS = "nginx"
# Labels the chart puts on the controller pods; the workloads' NetworkPolicy admits exactly these.
INGRESS_CONTROLLER_LABELS = {
    "app.kubernetes.io/name": "ingress-nginx",
    "app.kubernetes.io/component": "controller",
}

ACME_SERVERS = {
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "letsencrypt-production": "https://acme-v02.api.letsencrypt.org/directory",
}

# Sent on every response the controller serves. CSP is left to the app: it knows that /docs loads
# Swagger UI, and a CSP strict enough for the JSON API would break that page.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# ingress-nginx's ConfigMap (controller-wide): TLS 1.2+ only, HSTS, no version banner, client
# addresses taken from the connection (the NLB preserves them) rather than from spoofable headers.
INGRESS_CONTROLLER_CONFIG = {
    "ssl-protocols": "TLSv1.2 TLSv1.3",
    "ssl-prefer-server-ciphers": "true",
    "hsts": "true",
    "hsts-max-age": "31536000",
    "hsts-include-subdomains": "true",
    "hsts-preload": "false",
    "ssl-redirect": "true",
    "server-tokens": "false",
    "use-forwarded-headers": "false",
    "allow-snippet-annotations": "false",
    "limit-req-status-code": "429",
    "limit-conn-status-code": "429",
    # Longer than the app's 20 s graceful shutdown, so in-flight requests finish on a reload.
    "worker-shutdown-timeout": "30s",
}

# In-tree / cloud-provider-aws annotations: an internet-facing NLB in the public subnets, spread
# across zones. externalTrafficPolicy=Local (below) keeps the client address for rate limiting.
NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
    "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
    "service.beta.kubernetes.io/aws-load-balancer-backend-protocol": "tcp",
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
    return {"http01": {"ingress": {"ingressClassName": INGRESS_CLASS}}}


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


def zone_spread(labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Chart-values form of a topology spread over zones (best effort: zones may be short of room)."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(labels)},
        }
    ]


def ingress_nginx_values(
    settings: PlatformSettings, replicas: int, source_ranges: Sequence[str]
) -> dict[str, Any]:
    return {
        "controller": {
            "replicaCount": replicas,
            "minAvailable": 1,
            "ingressClass": INGRESS_CLASS,
            "ingressClassResource": {
                "name": INGRESS_CLASS,
                "enabled": True,
                "default": False,
                "controllerValue": "k8s.io/ingress-nginx",
            },
            # The Ingress' own annotations cannot inject raw nginx configuration (CVE-2021-25742).
            "allowSnippetAnnotations": False,
            "config": INGRESS_CONTROLLER_CONFIG,
            "addHeaders": SECURITY_HEADERS,
            "service": {
                # The only LoadBalancer Service in the cluster.
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "annotations": NLB_ANNOTATIONS,
                "loadBalancerSourceRanges": list(source_ranges),
            },
            "admissionWebhooks": {"enabled": True},
            # Seam for monitoring (a later issue): the metrics port, no ServiceMonitor yet.
            "metrics": {"enabled": True, "serviceMonitor": {"enabled": False}},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            "topologySpreadConstraints": zone_spread(INGRESS_CONTROLLER_LABELS),
        },
        "defaultBackend": {"enabled": False},
    }


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
    # Controller replicas (ingress-nginx and cert-manager); two or more survive a node drain.
    replicas: int = 2


class Platform(pulumi.ComponentResource):
    """cert-manager with both Let's Encrypt ClusterIssuers, ingress-nginx behind an NLB, metrics-server."""

    cluster_issuer: str
    ingress_class: str
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
        cert_manager = self._release(
            "cert-manager",
            CERT_MANAGER_NAMESPACE,
            restricted_namespace(),
            chart="cert-manager",
            version=settings.cert_manager_chart_version,
            repo=CERT_MANAGER_REPO,
            values=cert_manager_values(role_arn, args.replicas),
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
        # The controller's pods need NET_BIND_SERVICE for ports 80/443, which `restricted` forbids.
        ingress_nginx = self._release(
            "ingress-nginx",
            INGRESS_NAMESPACE,
            restricted_namespace(enforce="baseline"),
            chart="ingress-nginx",
            version=settings.ingress_nginx_chart_version,
            repo=INGRESS_NGINX_REPO,
            values=ingress_nginx_values(settings, args.replicas, settings.ingress_allowed_cidrs),
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
        self.ingress_class = INGRESS_CLASS
        self.ingress_namespace = INGRESS_NAMESPACE
        self.cert_manager_role_arn = role_arn
        self.ingress_dependencies = [ingress_nginx, issuers[settings.cluster_issuer]]
        self.register_outputs(
            {
                "cluster_issuer": self.cluster_issuer,
                "ingress_class": self.ingress_class,
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
            opts=self._on_cluster,
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
