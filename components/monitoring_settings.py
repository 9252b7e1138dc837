"""The ``monitoring`` section of a stack file: what the Monitoring (monitoring.py) and Alarms
(alarms.py) components are built from."""

from __future__ import annotations

from pydantic import Field

from components.settings import Section


class MonitoringSettings(Section):
    enabled: bool = True
    """Install the monitoring stack and alarms (required in production)."""
    chart_version: str = Field(default="79.1.0", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned kube-prometheus-stack Helm chart version."""
    retention_days: int = Field(default=15, ge=1, le=365)
    """Days Prometheus keeps metrics."""
    storage_gib: int = Field(default=50, ge=10, le=4096)
    """Prometheus volume size."""
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
    """Address subscribed to the alarm SNS topic (none: topic only)."""
