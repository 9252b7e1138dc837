"""The ``registry`` section of a stack file: what the Registry component (registry.py) is built from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.settings import Section


class RegistrySettings(Section):
    keep_tagged_images: int = Field(default=30, ge=1, le=1000)
    """Tagged images kept per repository; older ones expire."""
    untagged_expiry_days: int = Field(default=7, ge=1, le=365)
    """Days after which untagged images expire."""
    force_delete: bool = False
    """Let `pulumi destroy` delete repositories that still hold images (never in production)."""
    scan_block_severity: Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"] = "HIGH"
    """Lowest scan-finding severity that stops a deploy (`python -m stacks scan-gate`) unless allowlisted."""
