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

    @model_validator(mode="after")
    def _bounds_ordered(self) -> HpaSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError("needs minReplicas <= maxReplicas")
        return self


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
