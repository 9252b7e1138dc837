"""The ``cache`` section of a stack file: what the Cache component (cache.py) is built from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.settings import Section


class CacheSettings(Section):
    engine: Literal["redis", "valkey"] = "valkey"
    """`valkey` or `redis` (both speak the Redis protocol Celery uses)."""
    engine_version: str = Field(default="8.0", pattern=r"^\d+\.\d+$")
    """Engine major.minor version; minor upgrades happen by raising it (never automatically)."""
    node_type: str = Field(default="cache.r7g.large", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
    """ElastiCache node type."""
    replicas: int = Field(default=1, ge=1, le=5)
    """Replicas besides the primary; automatic failover needs at least one."""
    snapshot_retention_days: int = Field(default=7, ge=1, le=35)
    """Days daily snapshots are kept."""
    snapshot_window: str = Field(default="02:00-03:00", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")
    """Daily snapshot window, UTC."""
    maintenance_window: str = Field(
        default="sun:05:30-sun:06:30", pattern=r"^[a-z]{3}:\d{2}:\d{2}-[a-z]{3}:\d{2}:\d{2}$"
    )
    """Weekly maintenance window, UTC."""
    auth_token_update_strategy: Literal["SET", "ROTATE"] = "SET"  # noqa: S105 - a strategy name
    """How a changed AUTH token is applied: `ROTATE` for the deploy that replaces it (old and new both accepted until the pods restart), then back to `SET`, whose deploy makes the new token the only one (docs/runbook.md, Rotate secrets)."""
