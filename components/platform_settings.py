"""The ``platform`` section of a stack file: what the Platform component (platform.py) is built from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.settings import Section


class PlatformSettings(Section):
    domain: str = Field(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    """DNS zone the service is published under (the API is `<app.hostname>.<domain>`)."""
    acme_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
    """Contact address registered with Let's Encrypt."""
    cluster_issuer: Literal["letsencrypt-staging", "letsencrypt-production"] = "letsencrypt-production"
    """Which Let's Encrypt ClusterIssuer the edge's certificate uses; both are installed."""
    hosted_zone_id: str | None = Field(default=None, pattern=r"^Z[A-Z0-9]{1,32}$")
    """Route 53 zone for DNS-01 challenges (through IRSA); without one cert-manager uses HTTP-01."""
    cert_manager_chart_version: str = Field(default="v1.19.1", pattern=r"^v?\d+\.\d+\.\d+$")
    """Pinned cert-manager Helm chart version."""
    metrics_server_chart_version: str = Field(default="3.13.0", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned metrics-server Helm chart version (HPA metrics)."""
