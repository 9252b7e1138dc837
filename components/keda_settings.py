"""The ``keda`` section of a stack file: what the Keda component (keda.py) is built from."""

from __future__ import annotations

from pydantic import Field

from components.settings import Section


class KedaSettings(Section):
    chart_version: str = Field(default="2.21.1", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned KEDA Helm chart version (kedacore/keda); the operator images run the same version."""
    image_tag: str = Field(default="2.21.1", pattern=r"^\d+\.\d+\.\d+$")
    """KEDA image tag (operator, metrics apiserver, admission webhooks), pinned rather than left to the chart."""
