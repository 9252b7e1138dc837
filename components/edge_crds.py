"""The edge's namespace and the CRDs it serves: Gateway API (standard channel) and Envoy Gateway's own,
from Envoy Gateway's CRD chart (``gateway-crds-helm``) at the stack's pinned version.

A component of its own, ahead of the Edge, because two things must wait for these CRDs and one of them
is a dependency of the Edge: cert-manager with Gateway API support enabled fails to start when the
Gateway API CRDs are missing (cert-manager's "Upgrading from v1.14 to v1.15" notes, read 2026-12-02:
the ``--enable-gateway-api`` flag exists "so cert-manager will not crash if the GatewayAPI CRDs are not
installed"), while the Edge's Certificate needs cert-manager. So the order on a first install is:
these CRDs, then cert-manager (components/platform.py), then the Edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

EDGE_NAMESPACE = "envoy-gateway-system"
CHART_REGISTRY = "oci://docker.io/envoyproxy"
CRD_CHART = "gateway-crds-helm"


def restricted_namespace() -> dict[str, str]:
    return {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


def crd_values() -> dict[str, Any]:
    """Gateway API CRDs from the standard channel (no experimental kinds), and Envoy Gateway's own."""
    return {
        "crds": {"gatewayAPI": {"enabled": True, "channel": "standard"}, "envoyGateway": {"enabled": True}}
    }


@dataclass(frozen=True)
class EdgeCrdsArgs:
    provider: k8s.Provider
    # Envoy Gateway's version: its CRD chart and controller chart move together.
    chart_version: str


class EdgeCrds(pulumi.ComponentResource):
    """The edge's namespace (Pod Security ``restricted``) and the Gateway API and Envoy Gateway CRDs."""

    namespace: k8s.core.v1.Namespace
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: EdgeCrdsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ai-agents:edge:EdgeCrds", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=EDGE_NAMESPACE, labels=restricted_namespace()),
            opts=on_cluster,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name="gateway-crds",
            chart=f"{CHART_REGISTRY}/{CRD_CHART}",
            version=args.chart_version,
            namespace=self.namespace.metadata.name,
            values=crd_values(),
            skip_crds=False,
            # A failed upgrade rolls back instead of leaving half-updated CRDs.
            atomic=True,
            cleanup_on_fail=True,
            opts=on_cluster,
        )
        self.register_outputs({"namespace": EDGE_NAMESPACE, "release": self.release.name})
