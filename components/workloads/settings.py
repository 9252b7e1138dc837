"""The ``app`` section of a stack file: what the Workloads component (component.py) is built from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.settings import Name, Section


class HpaSettings(Section):
    min_replicas: int = Field(ge=1, le=100)
    """Fewest replicas the autoscaler keeps."""
    max_replicas: int = Field(ge=1, le=200)
    """Most replicas the autoscaler starts."""
    target_cpu_percent: int = Field(default=70, ge=10, le=95)
    """Average CPU utilisation (of requests) the autoscaler aims for."""
    target_memory_percent: int = Field(default=80, ge=10, le=95)
    """Average memory utilisation (of requests) the autoscaler aims for."""

    # The autoscaler's behaviour (autoscaling/v2 ``behavior``): grow fast, shrink slowly. Scale-up takes
    # the larger of the two policies (a burst doubles small deployments and adds pods in steps to large
    # ones); scale-down the smaller (one pod or a tenth, whichever removes less), after a stabilisation
    # window that rides out the gaps inside a burst of webhooks.
    scale_up_stabilization_seconds: int = Field(default=0, ge=0, le=3600)
    """Seconds of recommendations the autoscaler takes the lowest of before scaling up (0: at once)."""
    scale_up_percent: int = Field(default=100, ge=1, le=1000)
    """Most replicas added per policy period, as a percentage of the current count."""
    scale_up_pods: int = Field(default=4, ge=1, le=100)
    """Most replicas added per policy period, as a count (the larger of the two applies)."""
    scale_down_stabilization_seconds: int = Field(default=300, ge=0, le=3600)
    """Seconds of recommendations the autoscaler takes the highest of before scaling down."""
    scale_down_pods: int = Field(default=1, ge=1, le=100)
    """Most replicas removed per policy period, as a count."""
    scale_down_percent: int = Field(default=10, ge=1, le=100)
    """Most replicas removed per policy period, as a percentage (the smaller of the two applies)."""
    policy_period_seconds: int = Field(default=60, ge=1, le=1800)
    """Length of the window the scale-up and scale-down policies count in."""

    @model_validator(mode="after")
    def _bounds_ordered(self) -> HpaSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError("needs minReplicas <= maxReplicas")
        return self


class QueueScalingSettings(Section):
    """How KEDA scales the workers on the broker's queue length (components/workloads/scaling.py)."""

    target_per_replica: int = Field(default=32, ge=1, le=10000)
    """Waiting tasks per worker replica KEDA aims for (replicas = ceil(queue length / this))."""
    polling_interval_seconds: int = Field(default=15, ge=5, le=300)
    """How often KEDA reads the queue length."""
    cooldown_period_seconds: int = Field(default=300, ge=0, le=3600)
    """Seconds KEDA waits after the queue was last active before scaling to zero; scale-down between the
    bounds follows app.worker's scaleDown* settings (the bounds never reach zero)."""
    cpu_trigger: bool = True
    """Also scale on CPU (app.worker.targetCpuPercent), the larger replica count wins."""


class AppSettings(Section):
    version: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
    """The release: images are tagged with it (and the git SHA) and deployed by digest."""
    namespace: Name = "ai-agents"
    """Kubernetes namespace of the workloads."""
    hostname: str = Field(default="api", pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    """Host label of the public API under `platform.domain`."""
    api: HpaSettings = HpaSettings(min_replicas=3, max_replicas=10)
    """API replicas and autoscaling."""
    worker: HpaSettings = HpaSettings(min_replicas=3, max_replicas=10)
    """Worker replicas and autoscaling."""
    queue_scaling: QueueScalingSettings = QueueScalingSettings()
    """Worker autoscaling on the queue length (KEDA); app.worker keeps the replica bounds."""
    worker_concurrency: int = Field(default=16, ge=1, le=256)
    """Concurrent tasks per worker pod (threads; the work is I/O-bound)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Application log level."""
    llm_model: str = "gpt-4o-mini"
    """Model name sent to the OpenAI-compatible API."""
    llm_base_url: str = Field(default="https://api.openai.com/v1", pattern=r"^https://")
    """Base URL of the OpenAI-compatible API (https only)."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed by CORS (https, no wildcard)."""
    max_body_kib: int = Field(default=256, ge=1, le=10240)
    """Largest webhook body the ingress and the API accept."""
    rate_limit_rps: int = Field(default=20, ge=1, le=10000)
    """Requests per second per client IP at the ingress."""

    @field_validator("version")
    @classmethod
    def _not_latest(cls, value: str) -> str:
        if value == "latest":
            raise ValueError("'latest' is not a release; use a version such as 1.4.2")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _https_origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if value == "*" or not value.startswith("https://"):
                raise ValueError(f"{value!r} must be an https:// origin (no wildcard)")
        return values
