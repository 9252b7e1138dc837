"""The ``tracing`` section of a stack file: what the Tracing component (tracing.py) is built from."""

from __future__ import annotations

from pydantic import Field

from components.settings import Section

# The production range of ``sampleRatio`` (infra/config.py enforces it): enough traces to see a slow or
# failing path every few minutes at the service's volume, few enough to keep X-Ray's bill small.
PRODUCTION_SAMPLE_RATIO = (0.01, 0.05)


class TracingSettings(Section):
    enabled: bool = True
    """Run the OpenTelemetry Collector and export the pods' traces to AWS X-Ray (required in production)."""
    sample_ratio: float = Field(default=0.05, gt=0, le=1)
    """Share of traces kept (by trace id, in the collector); every trace with an error is kept on top."""
    decision_wait_seconds: int = Field(default=60, ge=5, le=600)
    """Seconds the collector holds a trace's spans before deciding; later spans follow that decision."""
    replicas: int = Field(default=1, ge=1, le=10)
    """Collector replicas (spans are routed by trace id, so any count keeps whole traces together)."""
    chart_version: str = Field(default="0.170.0", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned opentelemetry-collector Helm chart version."""
    image_tag: str = Field(default="0.158.0", pattern=r"^\d+\.\d+\.\d+$")
    """otel/opentelemetry-collector-contrib release the collector runs (shown; the digest is what is pulled)."""
    image_digest: str = Field(
        default="sha256:c5918f78992ee73b0d6f0e599423ac5ec52dd5d9726733114d6eca53d5a32ed5",
        pattern=r"^sha256:[0-9a-f]{64}$",
    )
    """Digest of that release's multi-platform image: the collector is pulled by digest."""
