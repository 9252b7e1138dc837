"""The ``edge`` section of a stack file: what the Edge component (edge.py) is built from."""

from __future__ import annotations

from pydantic import Field

from components.settings import Cidr, Section

# Envoy Gateway's charts are OCI artifacts; the chart and CRD chart versions move together.
VERSION = r"^v\d+\.\d+\.\d+$"


class EdgeSettings(Section):
    envoy_gateway_chart_version: str = Field(default="v1.9.2", pattern=VERSION)
    """Pinned Envoy Gateway chart (`gateway-helm`) and CRD chart (`gateway-crds-helm`) version."""
    allowed_cidrs: list[Cidr] = Field(default_factory=lambda: ["0.0.0.0/0"])
    """Client CIDRs the load balancer admits; a public webhook API admits the internet."""
    publish_docs: bool = False
    """Route `/docs` and `/openapi.json` to the internet; where false, the deploy's smoke test expects both to answer 404."""
    max_request_headers_kib: int = Field(default=16, ge=4, le=96)
    """Largest request header block the gateway accepts (the API's own limit is larger)."""
    request_timeout_seconds: int = Field(default=30, ge=1, le=300)
    """Whole-request timeout at the gateway (above the app's slowest synchronous endpoint)."""
    proxy_replicas: int = Field(default=2, ge=1, le=20)
    """Envoy proxy replicas behind the load balancer."""
