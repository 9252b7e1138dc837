"""The ``database`` section of a stack file: what the Database component (database.py) is built from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.settings import RuleViolation, Section


class DatabaseSettings(Section):
    engine_version: str = "17"
    """PostgreSQL major version (`17`); RDS applies minor versions itself in the maintenance window."""
    instance_class: str = Field(default="db.r6g.large", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    """RDS instance class."""
    allocated_storage_gib: int = Field(default=50, ge=20, le=65536)
    """Initial gp3 storage."""
    max_allocated_storage_gib: int = Field(default=200, ge=20, le=65536)
    """Ceiling for storage autoscaling."""
    multi_az: bool = True
    """Synchronous standby in another zone with automatic failover (required in production)."""
    backup_retention_days: int = Field(default=14, ge=7, le=35)
    """Days of automated backups and point-in-time recovery (7-35; 14+ in production)."""
    deletion_protection: bool = True
    """Refuse deletion, take a final snapshot and `protect` the resource (required in production)."""
    backup_window: str = Field(default="03:00-04:00", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")
    """Daily backup window, UTC (hh:mm-hh:mm)."""
    maintenance_window: str = Field(
        default="sun:04:30-sun:05:30", pattern=r"^[a-z]{3}:\d{2}:\d{2}-[a-z]{3}:\d{2}:\d{2}$"
    )
    """Weekly maintenance window, UTC (ddd:hh:mm-ddd:hh:mm)."""
    performance_insights_retention_days: int = Field(default=7, ge=7, le=731)
    """Days Performance Insights keeps its data (7 is free)."""
    monitoring_interval_seconds: Literal[1, 5, 10, 15, 30, 60] = 60
    """Enhanced Monitoring granularity."""
    database_name: str = Field(default="ai_agents", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    """Name of the application database."""

    @field_validator("engine_version")
    @classmethod
    def _major_only(cls, value: str) -> str:
        # RDS upgrades minors itself (autoMinorVersionUpgrade); a pinned minor then reads as a downgrade
        # the next `up` asks for and RDS refuses. Under a major-only version the AWS provider ignores the
        # running minor (engine_version_actual): terraform-provider-aws#39579.
        if value != "17":
            raise ValueError(f"a major version only: 17 (got {value!r}; RDS upgrades minors itself)")
        return value

    @model_validator(mode="after")
    def _storage_can_grow(self) -> DatabaseSettings:
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise RuleViolation(
                "database.maxAllocatedStorageGib", "must be at least database.allocatedStorageGib"
            )
        return self
