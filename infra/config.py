"""Typed stack configuration.

Every value a stack can set lives in one pydantic model, validated before any resource is declared.
Stack files hold one Pulumi config key per section (``ai-agents-platform:database``) whose value is an
object with camelCase keys, so an error can always name the exact key:

    Pulumi.production.yaml: ai-agents-platform:database.multiAz: must be true in production

Each section's type lives beside the component it configures (``components/*_settings.py``); this
module composes them into :class:`StackConfig`, adds the rules that span sections or apply only to
production, and reads stack files. Defaults are the secure choice; a stack file may relax one only
where a rule allows it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from components.cache_settings import CacheSettings
from components.cluster_settings import ClusterSettings
from components.cost_settings import CostSettings
from components.database_settings import DatabaseSettings
from components.edge_settings import EdgeSettings
from components.images_settings import ImagesSettings
from components.keda_settings import KedaSettings
from components.monitoring_settings import MonitoringSettings
from components.network_settings import NetworkSettings
from components.platform_settings import PlatformSettings
from components.registry_settings import RegistrySettings
from components.settings import RuleViolation, Section
from components.tracing_settings import PRODUCTION_SAMPLE_RATIO, TracingSettings
from components.workloads.settings import AppSettings

PROJECT = "ai-agents-platform"
REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A stack config problem, rendered as one line: ``FILE: project:key.path: rule``."""

    def __init__(self, source: str, key: str, rule: str) -> None:
        self.source = source
        self.key = key
        self.rule = rule
        super().__init__(f"{source}: {PROJECT}:{key}: {rule}" if key else f"{source}: {rule}")


class AwsSettings(Section):
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    """AWS region every resource of the stack lives in."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tags added to every AWS resource through the provider's default tags."""


class StackConfig(Section):
    """Everything a stack can set. Staging and production differ only through their stack files."""

    environment: Literal["staging", "production"]
    """`staging` or `production`; production turns on the stricter rules."""
    aws: AwsSettings
    """Region and tags."""
    network: NetworkSettings = NetworkSettings()
    """VPC, subnets, NAT and flow logs."""
    cluster: ClusterSettings
    """EKS cluster and node groups."""
    database: DatabaseSettings = DatabaseSettings()
    """RDS PostgreSQL."""
    cache: CacheSettings = CacheSettings()
    """ElastiCache (Redis protocol), the Celery broker."""
    registry: RegistrySettings = RegistrySettings()
    """ECR repositories."""
    images: ImagesSettings = ImagesSettings()
    """Which build the workloads run: this checkout's, or an already pushed one (rollback)."""
    platform: PlatformSettings
    """Domain, TLS and the cluster add-ons."""
    edge: EdgeSettings = EdgeSettings()
    """The internet edge: Envoy Gateway, its load balancer, TLS and request limits."""
    app: AppSettings
    """The service's workloads."""
    keda: KedaSettings = KedaSettings()
    """KEDA, which scales the workers on the queue length."""
    monitoring: MonitoringSettings = MonitoringSettings()
    """Prometheus, Grafana, alerts and CloudWatch alarms."""
    tracing: TracingSettings = TracingSettings()
    """OpenTelemetry Collector, trace sampling and export to AWS X-Ray."""
    cost: CostSettings = CostSettings()
    """Usage assumptions of the cost estimate in plan.md (the budget is a policy pack knob)."""

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def public_hostname(self) -> str:
        return f"{self.app.hostname}.{self.platform.domain}"

    @model_validator(mode="after")
    def _production_rules(self) -> StackConfig:
        if not self.is_production:
            return self
        rules: list[tuple[bool, str, str]] = [
            (self.database.multi_az, "database.multiAz", "must be true in production"),
            (self.database.deletion_protection, "database.deletionProtection", "must be true in production"),
            (
                self.database.backup_retention_days >= 14,
                "database.backupRetentionDays",
                "must be at least 14 in production",
            ),
            (self.network.nat_gateways == "perAz", "network.natGateways", "must be 'perAz' in production"),
            (
                self.platform.cluster_issuer == "letsencrypt-production",
                "platform.clusterIssuer",
                "must be 'letsencrypt-production' in production (staging certificates are untrusted)",
            ),
            (not self.registry.force_delete, "registry.forceDelete", "must be false in production"),
            (self.monitoring.enabled, "monitoring.enabled", "must be true in production"),
            (self.app.api.min_replicas >= 2, "app.api.minReplicas", "must be at least 2 in production"),
            (self.app.worker.min_replicas >= 2, "app.worker.minReplicas", "must be at least 2 in production"),
            (self.tracing.enabled, "tracing.enabled", "must be true in production"),
            (
                PRODUCTION_SAMPLE_RATIO[0] <= self.tracing.sample_ratio <= PRODUCTION_SAMPLE_RATIO[1],
                "tracing.sampleRatio",
                f"must be between {PRODUCTION_SAMPLE_RATIO[0]} and {PRODUCTION_SAMPLE_RATIO[1]} in production",
            ),
        ]
        for holds, key, rule in rules:
            if not holds:
                raise RuleViolation(key, rule)
        return self


def _violation(error: Mapping[str, Any]) -> RuleViolation | None:
    context: Mapping[str, Any] = error.get("ctx") or {}
    violation = context.get("error")
    return violation if isinstance(violation, RuleViolation) else None


def _error_key(error: Mapping[str, Any]) -> str:
    if violation := _violation(error):
        return violation.key
    return ".".join(str(part) for part in error["loc"])


def _error_rule(error: Mapping[str, Any]) -> str:
    if violation := _violation(error):
        return violation.rule
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "is required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse_stack_config(values: Mapping[str, Any], source: str) -> StackConfig:
    """Validate project-namespaced config values (``{"ai-agents-platform:app": {...}}``).

    Raises ConfigError naming ``source`` and the first offending key.
    """
    sections: dict[str, Any] = {}
    for full_key, value in values.items():
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue  # provider settings such as aws:region belong to their providers
        sections[key] = _decode(value)
    try:
        return StackConfig.model_validate(sections)
    except ValidationError as exc:
        # A misspelt key shows up twice: as unknown, and as the key it should have been, missing.
        # The unknown one is the actionable error, so it is reported first.
        errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(source, _error_key(first), _error_rule(first) + more) from None


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text; stack files hold it as YAML."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def stack_file(stack: str) -> Path:
    return REPO_ROOT / f"Pulumi.{stack}.yaml"


def read_stack_file(stack: str, path: Path | None = None) -> dict[str, Any]:
    """The ``config:`` map of ``Pulumi.<stack>.yaml`` (or ``path``); ConfigError when missing or malformed."""
    path = path or stack_file(stack)
    source = path.name
    if not path.is_file():
        raise ConfigError(source, "", f"no such stack file (stacks: {', '.join(known_stacks())})")
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(source, "", f"is not valid YAML{where}") from None
    if not isinstance(document, dict) or not isinstance(cast(dict[str, Any], document).get("config"), dict):
        raise ConfigError(source, "", "must be a mapping with a 'config:' mapping")
    config = cast(dict[str, Any], cast(dict[str, Any], document)["config"])
    for key, value in config.items():
        if isinstance(value, dict) and "secure" in value:
            raise ConfigError(
                source,
                str(key).partition(":")[2],
                "secrets do not belong in stack config; put them in AWS Secrets Manager",
            )
    return config


def load_stack_file(stack: str, path: Path | None = None) -> StackConfig:
    return parse_stack_config(read_stack_file(stack, path), (path or stack_file(stack)).name)


def known_stacks() -> list[str]:
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in REPO_ROOT.glob("Pulumi.*.yaml")
    )


def load_from_pulumi() -> StackConfig:
    """Read the running stack's config through Pulumi (the real engine and the offline plan alike)."""
    import pulumi  # imported here: validating config alone needs no SDK

    config = pulumi.Config(PROJECT)
    values = {
        f"{PROJECT}:{key}": raw
        for key in StackConfig.model_fields
        if (raw := config.get(to_camel(key))) is not None
    }
    # Unknown top-level keys never reach the model through Config.get, so look for them explicitly.
    from pulumi.runtime.config import CONFIG, get_config_env

    present = set(CONFIG.get()) | set(get_config_env())
    known = {f"{PROJECT}:{to_camel(key)}" for key in StackConfig.model_fields}
    source = f"Pulumi.{pulumi.get_stack()}.yaml"
    for key in sorted(present):
        if key.startswith(f"{PROJECT}:") and key not in known:
            raise ConfigError(source, key.partition(":")[2], "unknown key")
    return parse_stack_config(values, source)
