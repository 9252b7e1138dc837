"""Read-only checks of a stack file and its target AWS account before any ``pulumi up`` or ``preview``.

Every finding names the stack-file key (or the AWS resource) and the fix. The checks only read: STS
caller identity, IAM ``GetRole``, Route 53 ``GetHostedZone``, Secrets Manager ``ListSecrets`` and
``DescribeSecret``, Service Quotas ``GetServiceQuota``, EC2 ``DescribeVpcs``/``DescribeAddresses``, RDS
``DescribeOrderableDBInstanceOptions`` and ElastiCache ``DescribeCacheEngineVersions``: the preview
role's ReadOnlyAccess covers them all. boto3 honours ``AWS_ENDPOINT_URL`` (and the per-service
``AWS_ENDPOINT_URL_<SERVICE>``), which is how the tests point it at moto's server.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Literal, cast

from botocore.exceptions import (  # pyright: ignore[reportMissingTypeStubs]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
)
from botocore.parsers import ResponseParserError  # pyright: ignore[reportMissingTypeStubs]

from components.cluster_settings import EKS_CALENDAR_SOURCE, EKS_SUPPORT_CALENDAR
from infra.config import PROJECT, StackConfig

Status = Literal["ok", "warn", "fail"]
ClientFactory = Callable[[str], Any]

# Warn this long before the Kubernetes version leaves standard support: time to plan one upgrade.
SUPPORT_WARNING_DAYS = 60
# Documentation address ranges (RFC 5737 for IPv4, RFC 3849 for IPv6): nothing real lives there.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
# RFC 2606 names (example.com/.net/.org, *.example), AWS's documentation account, change-me values.
PLACEHOLDER_PATTERNS = (
    (
        re.compile(r"(^|[.@/])example\.(com|net|org)\b|\.example(\b|$)", re.I),
        "an example.* domain or mailbox",
    ),
    (re.compile(r"(?<!\d)123456789012(?!\d)"), "AWS's documentation account 123456789012"),
    (re.compile(r"change[-_ ]?me|replace[-_ ]?me|\bTODO\b|\bFIXME\b", re.I), "a change-me value"),
)
# Service Quotas codes, with AWS's default values (used when the account has no applied value).
VPC_QUOTA = ("vpc", "L-F678F1CE", 5.0)  # VPCs per Region
EIP_QUOTA = ("ec2", "L-0263D0A3", 5.0)  # EC2-VPC Elastic IPs
DATABASE_ENGINE = "postgres"


class CannotRun(Exception):
    """No credentials, no region, an unreachable endpoint: said in one line, exit 2."""


@dataclass(frozen=True)
class Finding:
    check: str
    key: str  # the stack-file key, or the AWS resource, the finding is about
    status: Status
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Report:
    stack: str
    account: str
    caller: str
    findings: list[Finding]

    @property
    def ready(self) -> bool:
        return all(f.status != "fail" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "account": self.account,
            "caller": self.caller,
            "ready": self.ready,
            "findings": [asdict(f) for f in self.findings],
        }


# --- the stack file, offline -------------------------------------------------------------------------------


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, child in cast(Mapping[str, Any], value).items():
            yield from _leaves(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, child in enumerate(cast(list[Any], value)):
            yield from _leaves(child, f"{path}[{index}]")
    elif value is not None:
        yield path, str(value)


def _documentation_address(text: str) -> bool:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return any(network.version == d.version and network.subnet_of(d) for d in DOCUMENTATION_NETWORKS)  # pyright: ignore[reportArgumentType]


def placeholder_findings(values: Mapping[str, Any]) -> list[Finding]:
    """Every stack-file value that is a documentation or example placeholder (AWS or Let's Encrypt
    refuse them, or they lock everyone out of the cluster)."""
    findings: list[Finding] = []
    for full_key, raw in values.items():
        key = full_key.removeprefix(f"{PROJECT}:")
        for path, text in _leaves(raw, key):
            reasons = [why for pattern, why in PLACEHOLDER_PATTERNS if pattern.search(text)]
            if _documentation_address(text):
                reasons.append("a documentation address range (RFC 5737/3849)")
            for reason in reasons:
                findings.append(
                    Finding(
                        "placeholders", path, "fail", f"{text!r} is {reason}", f"set the real value of {path}"
                    )
                )
    return findings or [Finding("placeholders", "stack file", "ok", "no placeholder values")]


def version_findings(version: str, today: date) -> list[Finding]:
    key = "cluster.kubernetesVersion"
    support = EKS_SUPPORT_CALENDAR.get(version)
    if support is None:
        return [
            Finding("kubernetes", key, "fail", f"{version} is not in the EKS support calendar", "pick 1.35+")
        ]
    newest = max(EKS_SUPPORT_CALENDAR, key=lambda v: EKS_SUPPORT_CALENDAR[v].standard_ends)
    fix = f"upgrade one minor version at a time towards {newest} (calendar: {EKS_CALENDAR_SOURCE})"
    ends = support.standard_ends
    if today >= ends:
        return [Finding("kubernetes", key, "fail", f"{version} left EKS standard support on {ends}", fix)]
    if (ends - today).days <= SUPPORT_WARNING_DAYS:
        return [Finding("kubernetes", key, "warn", f"{version} leaves EKS standard support on {ends}", fix)]
    return [Finding("kubernetes", key, "ok", f"{version} is in EKS standard support until {ends}")]


# --- the account, read-only -------------------------------------------------------------------------------


def _error_code(exc: ClientError) -> str:
    response: Mapping[str, Any] = getattr(exc, "response", None) or {}
    error: Mapping[str, Any] = response.get("Error") or {}
    return str(error.get("Code", ""))


def _role_name(arn: str) -> str:
    """The role name of a role ARN or of an assumed-role session ARN (paths dropped)."""
    resource = arn.split(":", 5)[-1]
    if resource.startswith("assumed-role/"):
        return resource.split("/")[1]
    return resource.rsplit("/", 1)[-1]


def _account(arn: str) -> str:
    return arn.split(":")[4]


def caller_identity(clients: ClientFactory) -> dict[str, str]:
    try:
        identity = clients("sts").get_caller_identity()
    except NoCredentialsError:
        raise CannotRun("no AWS credentials (set AWS_PROFILE, or assume the stack's role)") from None
    except NoRegionError:
        raise CannotRun("no AWS region") from None
    except ClientError as exc:
        raise CannotRun(f"the credentials were refused: {_error_code(exc)}") from None
    except BotoCoreError as exc:
        raise CannotRun(str(exc)) from None
    return {"Account": identity["Account"], "Arn": identity["Arn"]}


def admin_role_findings(
    clients: ClientFactory, admin_role_arns: Sequence[str], caller_arn: str
) -> list[Finding]:
    """The caller (who creates the cluster, and so gets EKS's own admin entry) is not listed again, and
    every listed role exists."""
    findings: list[Finding] = []
    iam = clients("iam")
    caller_role = (
        _role_name(caller_arn) if (":assumed-role/" in caller_arn or ":role/" in caller_arn) else None
    )
    for index, arn in enumerate(admin_role_arns):
        key = f"cluster.adminRoleArns[{index}]"
        if caller_role and _role_name(arn) == caller_role and _account(arn) == _account(caller_arn):
            findings.append(
                Finding(
                    "admin-roles",
                    key,
                    "fail",
                    f"{arn} is the identity running this (it creates the cluster and gets EKS's admin "
                    "entry already; a second entry fails with 409)",
                    "remove it from cluster.adminRoleArns",
                )
            )
            continue
        if _account(arn) != _account(caller_arn):
            findings.append(
                Finding("admin-roles", key, "warn", f"{arn} is in another account: not checked", "")
            )
            continue
        try:
            iam.get_role(RoleName=_role_name(arn))
        except ClientError as exc:
            if _error_code(exc) != "NoSuchEntity":
                raise
            findings.append(
                Finding(
                    "admin-roles",
                    key,
                    "fail",
                    f"{arn} does not exist (CreateAccessEntry would fail)",
                    "create the role first, or remove it from cluster.adminRoleArns",
                )
            )
            continue
        findings.append(Finding("admin-roles", key, "ok", f"{arn} exists"))
    return findings or [
        Finding(
            "admin-roles",
            "cluster.adminRoleArns",
            "warn",
            "no admins besides the identity that creates the cluster",
            "list the human admin roles",
        )
    ]


def hosted_zone_findings(clients: ClientFactory, zone_id: str | None, domain: str) -> list[Finding]:
    key = "platform.hostedZoneId"
    if not zone_id:
        return [Finding("hosted-zone", key, "ok", "HTTP-01: no hosted zone needed")]
    try:
        zone = clients("route53").get_hosted_zone(Id=zone_id)["HostedZone"]
    except ClientError as exc:
        if _error_code(exc) not in ("NoSuchHostedZone", "InvalidInput"):
            raise
        return [
            Finding("hosted-zone", key, "fail", f"hosted zone {zone_id} does not exist", "set the zone's id")
        ]
    name = str(zone["Name"]).rstrip(".").lower()
    if domain.lower() == name or domain.lower().endswith(f".{name}"):
        return [Finding("hosted-zone", key, "ok", f"{zone_id} is {name}, which holds {domain}")]
    return [
        Finding(
            "hosted-zone",
            key,
            "fail",
            f"{zone_id} is {name}, which does not hold platform.domain {domain}",
            "set the id of the zone of platform.domain",
        )
    ]


def secret_findings(clients: ClientFactory, stack: str) -> list[Finding]:
    """The secrets an operator fills (the LLM key): created empty by the first `up`, then given a value."""
    prefix = f"ai-agents/{stack}/llm-api-key-"
    sm = clients("secretsmanager")
    found = [
        s
        for page in sm.get_paginator("list_secrets").paginate(Filters=[{"Key": "name", "Values": [prefix]}])
        for s in page["SecretList"]
        if str(s["Name"]).startswith(prefix)
    ]
    if not found:
        return [
            Finding(
                "secrets",
                prefix + "*",
                "warn",
                "the LLM API key secret does not exist yet (the first `pulumi up` creates it empty)",
                "after the first up: aws secretsmanager put-secret-value --secret-id <llmApiKeySecretArn> ...",
            )
        ]
    findings: list[Finding] = []
    for secret in found:
        versions: dict[str, list[str]] = (
            sm.describe_secret(SecretId=secret["ARN"]).get("VersionIdsToStages") or {}
        )
        current = any("AWSCURRENT" in stages for stages in versions.values())
        if current:
            findings.append(Finding("secrets", secret["Name"], "ok", "has a value"))
        else:
            findings.append(
                Finding(
                    "secrets",
                    secret["Name"],
                    "fail",
                    "has no value: the workers cannot call the LLM",
                    f"aws secretsmanager put-secret-value --secret-id {secret['ARN']} --secret-string ...",
                )
            )
    return findings


def _quota(clients: ClientFactory, service: str, code: str, default: float) -> float:
    quotas = clients("service-quotas")
    try:
        return float(quotas.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]["Value"])
    except ClientError as exc:
        if _error_code(exc) != "NoSuchResourceException":
            raise
    try:  # no applied value in this account: AWS's default for it
        return float(
            quotas.get_aws_default_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]["Value"]
        )
    except (ClientError, ResponseParserError):
        return default  # AWS's documented default, when even that cannot be read


def quota_findings(clients: ClientFactory, config: StackConfig) -> list[Finding]:
    """Room for what the plan adds: one VPC, and an Elastic IP per NAT gateway."""
    ec2 = clients("ec2")
    nat_gateways = config.network.az_count if config.network.nat_gateways == "perAz" else 1
    vpcs = sum(len(p["Vpcs"]) for p in ec2.get_paginator("describe_vpcs").paginate())
    addresses = len(ec2.describe_addresses()["Addresses"])
    wanted = (
        ("VPCs per Region", VPC_QUOTA, vpcs, 1, "network"),
        ("EC2-VPC Elastic IPs", EIP_QUOTA, addresses, nat_gateways, "network.natGateways"),
    )
    findings: list[Finding] = []
    for label, (service, code, default), used, needed, key in wanted:
        limit = _quota(clients, service, code, default)
        message = f"{label}: {used} used, {needed} needed, quota {limit:g}"
        if used + needed > limit:
            fix = f"request an increase of {service}/{code} in Service Quotas (or free {used + needed - int(limit)})"
            findings.append(Finding("quotas", key, "fail", message, fix))
        else:
            findings.append(Finding("quotas", key, "ok", message))
    return findings


def database_findings(clients: ClientFactory, config: StackConfig) -> list[Finding]:
    settings = config.database
    key = "database.instanceClass"
    paginator = clients("rds").get_paginator("describe_orderable_db_instance_options")
    options = [
        option
        for page in paginator.paginate(Engine=DATABASE_ENGINE, DBInstanceClass=settings.instance_class)
        for option in page["OrderableDBInstanceOptions"]
        # A major-only version (17) is met by any of its minors (17.6).
        if option["EngineVersion"] == settings.engine_version
        or str(option["EngineVersion"]).startswith(f"{settings.engine_version}.")
    ]
    what = f"{settings.instance_class} with {DATABASE_ENGINE} {settings.engine_version}"
    if not options:
        return [
            Finding(
                "database",
                key,
                "fail",
                f"{what} is not orderable in {config.aws.region}",
                "pick another class",
            )
        ]
    if settings.multi_az and not any(o.get("MultiAZCapable") for o in options):
        return [
            Finding(
                "database",
                "database.multiAz",
                "fail",
                f"{what} is not Multi-AZ capable",
                "pick another class",
            )
        ]
    return [Finding("database", key, "ok", f"{what} is orderable")]


def cache_findings(clients: ClientFactory, config: StackConfig) -> list[Finding]:
    settings = config.cache
    key = "cache.engineVersion"
    versions = [
        str(v["EngineVersion"])
        for page in clients("elasticache")
        .get_paginator("describe_cache_engine_versions")
        .paginate(Engine=settings.engine)
        for v in page["CacheEngineVersions"]
    ]
    wanted = settings.engine_version
    if any(v == wanted or v.startswith(f"{wanted}.") for v in versions):
        return [Finding("cache", key, "ok", f"{settings.engine} {wanted} is offered")]
    offered = ", ".join(sorted(set(versions))) or "none"
    return [
        Finding(
            "cache",
            key,
            "fail",
            f"{settings.engine} {wanted} is not offered in {config.aws.region} (offered: {offered})",
            "pick an offered version",
        )
    ]


AccountCheck = Callable[[], list[Finding]]


def _guarded(name: str, check: AccountCheck) -> list[Finding]:
    """A check the credentials may not run, or the endpoint cannot answer, is a finding (not ready)."""
    try:
        return check()
    except ClientError as exc:
        reason = _error_code(exc)
    except ResponseParserError:
        reason = "the endpoint's answer could not be read"
    return [
        Finding(name, name, "fail", f"could not check: {reason}", "run as the stack's preview or deploy role")
    ]


def run(
    stack: str, values: Mapping[str, Any], config: StackConfig, clients: ClientFactory, today: date
) -> Report:
    """Every check; CannotRun when the account cannot be asked at all."""
    identity = caller_identity(clients)
    caller = identity["Arn"]
    findings = placeholder_findings(values) + version_findings(config.cluster.kubernetes_version, today)
    account_checks: list[tuple[str, AccountCheck]] = [
        ("admin-roles", lambda: admin_role_findings(clients, config.cluster.admin_role_arns, caller)),
        (
            "hosted-zone",
            lambda: hosted_zone_findings(clients, config.platform.hosted_zone_id, config.platform.domain),
        ),
        ("secrets", lambda: secret_findings(clients, stack)),
        ("quotas", lambda: quota_findings(clients, config)),
        ("database", lambda: database_findings(clients, config)),
        ("cache", lambda: cache_findings(clients, config)),
    ]
    try:
        for name, check in account_checks:
            findings += _guarded(name, check)
    except (BotoCoreError, NoCredentialsError) as exc:
        raise CannotRun(str(exc)) from None
    return Report(stack, identity["Account"], caller, findings)


def boto3_clients(region: str) -> ClientFactory:
    """Clients of the stack's region with the caller's credentials (AWS_ENDPOINT_URL honoured by boto3)."""
    import boto3  # pyright: ignore[reportMissingTypeStubs]
    from botocore.config import Config  # pyright: ignore[reportMissingTypeStubs]

    session = boto3.Session(region_name=region)
    # Standard retries (3 attempts, or AWS_MAX_ATTEMPTS): a check that cannot be answered becomes a
    # finding, not a long wait.
    config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard"})
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:
            made[service] = session.client(service, config=config)  # pyright: ignore[reportUnknownMemberType]
        return made[service]

    return client
