"""Typed stack configuration.

Every value a stack can set lives in one pydantic model, validated before any resource is declared.
Stack files hold one Pulumi config key per section (``ai-agents-platform:database``) whose value is an
object with camelCase keys, so an error can always name the exact key:

    Pulumi.production.yaml: ai-agents-platform:database.multiAz: must be true in production

Defaults are the secure choice; a stack file may relax one only where a rule below allows it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

PROJECT = "ai-agents-platform"
REPO_ROOT = Path(__file__).resolve().parent.parent
KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34")


class ConfigError(Exception):
    """A stack config problem, rendered as one line: ``FILE: project:key.path: rule``."""

    def __init__(self, source: str, key: str, rule: str) -> None:
        self.source = source
        self.key = key
        self.rule = rule
        super().__init__(f"{source}: {PROJECT}:{key}: {rule}" if key else f"{source}: {rule}")


class RuleViolation(ValueError):
    """Raised by cross-field rules so the error names the key the rule is about, not the model."""

    def __init__(self, key: str, rule: str) -> None:
        self.key = key
        self.rule = rule
        super().__init__(rule)


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid CIDR block") from None
    if str(network) != value:
        raise ValueError(f"{value!r} has host bits set; the block is {network}")
    if network.version != 4:
        raise ValueError(f"{value!r} must be an IPv4 CIDR block")
    return str(network)


def _aws_name(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", value):
        raise ValueError(
            f"{value!r} must be 2-32 lowercase letters, digits or dashes, starting with a letter"
        )
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]
Name = Annotated[str, AfterValidator(_aws_name)]


class Section(BaseModel):
    """Base for every config section: camelCase keys in YAML, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
        # Each field's docstring is its description: docs/configuration.md is generated from them.
        use_attribute_docstrings=True,
    )


class AwsSettings(Section):
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    """AWS region every resource of the stack lives in."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tags added to every AWS resource through the provider's default tags."""


class NetworkSettings(Section):
    vpc_cidr: Cidr = "10.0.0.0/16"
    """IPv4 block of the VPC; /20 or larger. Private subnets get 1/8 of it each, public subnets 1/64."""
    az_count: int = Field(default=3, ge=2, le=6)
    """Availability zones to spread subnets, nodes, the database standby and cache replicas over."""
    nat_gateways: Literal["perAz", "single"] = "perAz"
    """`perAz` keeps each zone's egress alive when another zone fails; `single` saves cost (staging)."""
    flow_log_retention_days: Literal[7, 14, 30, 60, 90, 180, 365, 400, 545, 731, 1827, 3653] = 90
    """Days VPC flow logs are kept in CloudWatch Logs (a value CloudWatch accepts)."""

    @model_validator(mode="after")
    def _subnets_fit(self) -> NetworkSettings:
        # Each AZ gets a public and a private subnet carved out of the VPC CIDR (see network.py).
        prefix = ipaddress.ip_network(self.vpc_cidr).prefixlen
        if prefix > 20:
            raise RuleViolation(
                "network.vpcCidr", f"must be /20 or larger to hold {self.az_count * 2} subnets"
            )
        return self


class NodeGroupSettings(Section):
    name: Name
    """Name of the managed node group (unique in the cluster)."""
    instance_types: list[str] = Field(min_length=1)
    """EC2 instance types the group may launch, in order of preference."""
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    """`ON_DEMAND` or `SPOT`."""
    min_size: int = Field(ge=1, le=100)
    """Fewest nodes the group scales down to."""
    desired_size: int = Field(ge=1, le=100)
    """Nodes at creation (the autoscaler owns it afterwards)."""
    max_size: int = Field(ge=1, le=100)
    """Most nodes the group scales up to."""
    disk_size_gib: int = Field(default=50, ge=20, le=1000)
    """Encrypted gp3 root volume per node."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Kubernetes labels put on the group's nodes."""

    @field_validator("instance_types")
    @classmethod
    def _instance_type_shape(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", value):
                raise ValueError(f"{value!r} is not an EC2 instance type such as 'm6i.large'")
        return values

    @model_validator(mode="after")
    def _sizes_ordered(self) -> NodeGroupSettings:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("needs minSize <= desiredSize <= maxSize")
        return self


class ClusterSettings(Section):
    kubernetes_version: str = "1.33"
    """EKS Kubernetes version; one of the versions the policy pack allows."""
    node_groups: list[NodeGroupSettings] = Field(min_length=1)
    """Managed node groups, all in private subnets."""
    public_access_cidrs: list[Cidr] = Field(default_factory=list)
    """CIDRs allowed to reach the public API endpoint; empty makes the endpoint private only."""
    admin_role_arns: list[str] = Field(default_factory=list)
    """IAM roles granted cluster-admin through EKS access entries."""

    @field_validator("kubernetes_version")
    @classmethod
    def _supported_version(cls, value: str) -> str:
        if value not in KUBERNETES_VERSIONS:
            raise ValueError(f"must be one of {', '.join(KUBERNETES_VERSIONS)} (got {value!r})")
        return value

    @field_validator("public_access_cidrs")
    @classmethod
    def _not_the_internet(cls, values: list[str]) -> list[str]:
        if "0.0.0.0/0" in values:
            raise ValueError("0.0.0.0/0 opens the Kubernetes API to the internet; list your admin CIDRs")
        return values

    @field_validator("admin_role_arns")
    @classmethod
    def _role_arns(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", value):
                raise ValueError(f"{value!r} is not an IAM role ARN")
        return values

    @model_validator(mode="after")
    def _unique_node_groups(self) -> ClusterSettings:
        names = [group.name for group in self.node_groups]
        if len(names) != len(set(names)):
            raise ValueError("node group names must be unique")
        return self


class DatabaseSettings(Section):
    engine_version: str = Field(default="17.6", pattern=r"^17(\.\d+)?$")
    """PostgreSQL 17 minor version."""
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

    @model_validator(mode="after")
    def _storage_can_grow(self) -> DatabaseSettings:
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise RuleViolation(
                "database.maxAllocatedStorageGib", "must be at least database.allocatedStorageGib"
            )
        return self


class CacheSettings(Section):
    engine: Literal["redis", "valkey"] = "valkey"
    """`valkey` or `redis` (both speak the Redis protocol Celery uses)."""
    engine_version: str = Field(default="8.0", pattern=r"^\d+\.\d+$")
    """Engine major.minor version."""
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


class RegistrySettings(Section):
    keep_tagged_images: int = Field(default=30, ge=1, le=1000)
    """Tagged images kept per repository; older ones expire."""
    untagged_expiry_days: int = Field(default=7, ge=1, le=365)
    """Days after which untagged images expire."""
    force_delete: bool = False
    """Let `pulumi destroy` delete repositories that still hold images (never in production)."""


class PlatformSettings(Section):
    domain: str = Field(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    """DNS zone the service is published under (the API is `<app.hostname>.<domain>`)."""
    acme_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
    """Contact address registered with Let's Encrypt."""
    cluster_issuer: Literal["letsencrypt-staging", "letsencrypt-production"] = "letsencrypt-production"
    """Which Let's Encrypt ClusterIssuer the ingress uses; both are installed."""
    hosted_zone_id: str | None = Field(default=None, pattern=r"^Z[A-Z0-9]{1,32}$")
    """Route 53 zone for DNS-01 challenges (through IRSA); without one cert-manager uses HTTP-01."""
    cert_manager_chart_version: str = Field(default="v1.19.1", pattern=r"^v?\d+\.\d+\.\d+$")
    """Pinned cert-manager Helm chart version."""
    ingress_nginx_chart_version: str = Field(default="4.13.3", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned ingress-nginx Helm chart version."""
    metrics_server_chart_version: str = Field(default="3.13.0", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned metrics-server Helm chart version (HPA metrics)."""
    ingress_allowed_cidrs: list[Cidr] = Field(default_factory=lambda: ["0.0.0.0/0"])
    """Client CIDRs the load balancer admits; a public webhook API admits the internet."""


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
    platform: PlatformSettings
    """Domain, TLS and the cluster add-ons."""
    app: AppSettings
    """The service's workloads."""
    monitoring: MonitoringSettings = MonitoringSettings()
    """Prometheus, Grafana, alerts and CloudWatch alarms."""

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
