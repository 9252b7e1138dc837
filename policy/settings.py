"""Policy knobs: per-stack settings read from the ``config`` section of ``PulumiPolicy.yaml``.

Resolution order (later wins): the defaults in :class:`PolicySettings`, ``config.defaults``,
``config.stacks.<stack>``, then (real engine only) the properties the Pulumi CLI passes to one policy
through ``--policy-pack-config`` (``args.get_config()``).

The stack is the plan's ``stack`` offline (the checker sets it), and ``PULUMI_STACK`` under the real
engine (the CLI exports it to the policy pack's process).
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from components.cluster_settings import KUBERNETES_VERSIONS

PACK_DIR = Path(__file__).resolve().parent
PACK_FILE = PACK_DIR / "PulumiPolicy.yaml"

Level = Literal["mandatory", "advisory", "disabled"]
SeverityName = Literal["critical", "high", "medium", "low"]


class PolicyConfigError(ValueError):
    """The pack's configuration is invalid; the message names the file and the key."""


class PolicySettings(BaseModel):
    """Every knob of the pack, with its default (documented in docs/policy.md)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    stack: str = ""
    production_stacks: tuple[str, ...] = ("production",)
    enforcement_level: Level = "mandatory"
    policies: dict[str, Level] = Field(default_factory=dict[str, Level])
    # Per-severity level on the stack, e.g. {medium: advisory, low: advisory}: between ``policies``
    # (wins) and ``enforcementLevel``.
    severity_levels: dict[SeverityName, Level] = Field(default_factory=dict[SeverityName, Level])
    rds_min_backup_retention_days: int = Field(default=7, ge=1, le=35)
    rds_require_multi_az: bool = False
    elasticache_min_replicas: int = Field(default=1, ge=1, le=5)
    elasticache_min_snapshot_retention_days: int = Field(default=1, ge=1, le=35)
    elasticache_is_broker: bool = True
    # The versions a stack file may choose; PulumiPolicy.yaml does not restate them.
    eks_allowed_versions: tuple[str, ...] = KUBERNETES_VERSIONS
    eks_required_log_types: tuple[str, ...] = ("api", "audit", "authenticator")
    public_ingress_ports: tuple[int, ...] = (80, 443)
    load_balancer_security_group_pattern: str = r"(^|-)(lb|alb|nlb|elb|ingress)(-|$)"
    # Actions AWS defines without resource types ("*" is the only Resource they take): the ECR login,
    # the caller check, the trace collector's X-Ray upload, and the Describe* calls CodeBuild makes to
    # place a CI runner in a VPC.
    iam_wildcard_resource_actions: tuple[str, ...] = (
        "ecr:GetAuthorizationToken",
        "sts:GetCallerIdentity",
        "xray:PutTraceSegments",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
    )
    load_balancer_services: tuple[str, ...] = ()
    pss_exempt_namespaces: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")
    require_cpu_limits: bool = False
    extra_image_registries: tuple[str, ...] = ()
    # Estimated monthly cost (policy/cost.py) the stack must stay under; None: no budget.
    monthly_budget_usd: float | None = Field(default=None, gt=0)

    @field_validator("load_balancer_security_group_pattern")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("eks_allowed_versions")
    @classmethod
    def _versions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for version in value:
            if not re.fullmatch(r"1\.\d+", version):
                raise ValueError(f"{version!r} is not a Kubernetes minor version such as '1.33'")
        return value

    @property
    def production(self) -> bool:
        return self.stack in self.production_stacks

    def level_for(self, policy_name: str, default: str, severity: str | None = None) -> str:
        """The enforcement level of one policy on this stack: ``policies`` wins, then
        ``severityLevels`` for the policy's severity, then ``enforcementLevel``."""
        by_severity = self.severity_levels.get(cast(SeverityName, severity)) if severity else None
        return (
            self.policies.get(policy_name)
            or by_severity
            or (self.enforcement_level if default == "mandatory" else default)
        )

    def merged(self, overrides: Mapping[str, Any]) -> PolicySettings:
        """These settings with the engine's per-policy properties applied (unknown keys ignored)."""
        known = {k: v for k, v in overrides.items() if k != "enforcementLevel" and k in _ALIASES}
        if not known:
            return self
        data = self.model_dump(by_alias=True)
        data.update(known)
        return PolicySettings.model_validate(data)


_ALIASES = frozenset(to_camel(name) for name in PolicySettings.model_fields)


def _format_error(path: Path, where: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    return f"{path.name}: config.{where}.{key}: {first['msg']}"


def _mapping(value: Any, path: Path, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyConfigError(f"{path.name}: {where}: must be a mapping")
    return cast(dict[str, Any], value)


@cache
def _pack_config(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyConfigError(f"{path.name}: cannot be read: {exc}") from exc
    config = _mapping(_mapping(document, path, "document").get("config"), path, "config")
    unknown = set(config) - {"defaults", "stacks"}
    if unknown:
        raise PolicyConfigError(
            f"{path.name}: config.{sorted(unknown)[0]}: unknown key (use defaults or stacks)"
        )
    defaults = _mapping(config.get("defaults"), path, "config.defaults")
    stacks = _mapping(config.get("stacks"), path, "config.stacks")
    per_stack = {name: _mapping(value, path, f"config.stacks.{name}") for name, value in stacks.items()}
    return defaults, per_stack


def load_settings(stack: str, path: Path | None = None) -> PolicySettings:
    """The validated settings of one stack; PolicyConfigError names the key that is wrong."""
    path = path or PACK_FILE
    defaults, per_stack = _pack_config(path)
    for where, values in [("defaults", defaults), *[(f"stacks.{n}", v) for n, v in per_stack.items()]]:
        try:
            PolicySettings.model_validate(values)
        except ValidationError as exc:
            raise PolicyConfigError(_format_error(path, where, exc)) from None
    return PolicySettings.model_validate({**defaults, **per_stack.get(stack, {}), "stack": stack})


_ACTIVE_STACK: ContextVar[str | None] = ContextVar("policy_active_stack", default=None)


def active_stack() -> str:
    """The stack being checked: the offline checker's, else the engine's ``PULUMI_STACK``."""
    return _ACTIVE_STACK.get() or os.environ.get("PULUMI_STACK", "")


@contextmanager
def stack_context(stack: str) -> Generator[None]:
    """Evaluate policies for ``stack`` (used by the offline checker and the tests)."""
    token = _ACTIVE_STACK.set(stack)
    try:
        yield
    finally:
        _ACTIVE_STACK.reset(token)


def current_settings(overrides: Mapping[str, Any] | None = None) -> PolicySettings:
    settings = load_settings(active_stack())
    return settings.merged(overrides) if overrides else settings
