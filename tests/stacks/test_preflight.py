"""``python -m stacks preflight``: every finding both ways, against the suite's moto server.

Where moto lacks the API (RDS orderable options for PostgreSQL, ElastiCache engine versions, the EC2
Elastic IP quota) the client is a real botocore client with a Stubber answering a response recorded
in AWS's documented shape: the request is still validated against the service model.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from typer.testing import CliRunner

from harness.moto_server import CREDENTIALS, MotoServer
from infra.config import REPO_ROOT, StackConfig, load_stack_file
from stacks import preflight
from stacks.cli import app
from stacks.plan import load_config

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account
TODAY = date(2026, 12, 2)


def unique(prefix: str) -> str:
    # moto keeps one state for the whole test session: every name here is new.
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Clients:
    """A client factory: moto's clients, except the services given a stubbed client."""

    def __init__(self, moto: MotoServer, region: str = REGION, **stubbed: Any) -> None:
        self.moto, self.region, self.stubbed = moto, region, stubbed

    def __call__(self, service: str) -> Any:
        key = service.replace("-", "_")
        return self.stubbed[key] if key in self.stubbed else self.moto.client(service, region=self.region)


@pytest.fixture
def stubbed(moto: MotoServer) -> Iterator[Any]:
    """Make a stubbed client of a service (a real client of the moto endpoint: nothing reaches AWS)."""
    stubbers: list[Stubber] = []

    def make(service: str) -> tuple[Any, Stubber]:
        client = moto.client(service, region=REGION)
        stubber = Stubber(client)
        stubber.activate()
        stubbers.append(stubber)
        return client, stubber

    yield make
    for stubber in stubbers:
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def statuses(findings: list[preflight.Finding]) -> dict[str, str]:
    return {f.key: f.status for f in findings}


# --- placeholders -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_the_example_stack_files_are_refused(stack: str) -> None:
    values, _ = load_config(stack)
    failed = {f.key for f in preflight.placeholder_findings(values) if f.status == "fail"}
    assert {"cluster.adminRoleArns[0]", "platform.domain", "platform.acmeEmail"} <= failed
    assert all(f.fix for f in preflight.placeholder_findings(values))


@pytest.mark.parametrize(
    "value",
    [
        "203.0.113.0/24",
        "198.51.100.7/32",
        "192.0.2.0/24",
        "2001:db8::/48",
        "ops@example.org",
        "api.example.net",
        "arn:aws:iam::123456789012:role/admin",
        "change-me",
        "https://servicedesk.example",
    ],
)
def test_each_kind_of_placeholder_is_refused(value: str) -> None:
    (finding,) = preflight.placeholder_findings({"ai-agents-platform:x": {"y": [value]}})
    assert (finding.status, finding.key) == ("fail", "x.y[0]")


def test_real_values_pass() -> None:
    values = {
        "ai-agents-platform:cluster": {"publicAccessCidrs": ["198.18.4.0/24"]},
        "ai-agents-platform:platform": {"domain": "ai.acme-corp.io", "acmeEmail": "ops@acme-corp.io"},
        "ai-agents-platform:app": {"corsOrigins": ["https://desk.examples.io"]},
    }
    assert [f.status for f in preflight.placeholder_findings(values)] == ["ok"]


# --- Kubernetes version against the dated calendar --------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "today", "status"),
    [
        ("1.36", TODAY, "ok"),
        ("1.35", date(2027, 1, 26), "warn"),  # 60 days before 2027-03-27
        ("1.35", date(2027, 1, 25), "ok"),
        ("1.34", TODAY, "fail"),  # left standard support that day
        ("1.33", TODAY, "fail"),
        ("1.29", TODAY, "fail"),  # not in the calendar at all
    ],
)
def test_kubernetes_version_support(version: str, today: date, status: str) -> None:
    (finding,) = preflight.version_findings(version, today)
    assert (finding.key, finding.status) == ("cluster.kubernetesVersion", status)
    assert status == "ok" or finding.fix


def test_the_stack_files_default_to_a_supported_version() -> None:
    for stack in ("staging", "production"):
        version = load_stack_file(stack).cluster.kubernetes_version
        assert preflight.version_findings(version, TODAY)[0].status == "ok"


# --- admin roles: the creator is not listed, the listed ones exist ----------------------------------------


def test_admin_roles(moto: MotoServer) -> None:
    iam = moto.client("iam", region=REGION)
    admin, deploy = unique("pf-admin"), unique("pf-deploy")
    for name in (admin, deploy):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
    caller = f"arn:aws:sts::{ACCOUNT}:assumed-role/{deploy}/github-actions"
    arns = [f"arn:aws:iam::{ACCOUNT}:role/{n}" for n in (admin, deploy, unique("pf-missing"))]
    findings = preflight.admin_role_findings(Clients(moto), arns, caller)
    assert [f.status for f in findings] == ["ok", "fail", "fail"]
    assert "gets EKS's admin entry" in findings[1].message and "does not exist" in findings[2].message
    assert all(f.key.startswith("cluster.adminRoleArns[") for f in findings)


# --- hosted zone for DNS-01 --------------------------------------------------------------------------------


def test_hosted_zone(moto: MotoServer) -> None:
    zone_name = f"{unique('pf')}.test"
    zone = moto.client("route53").create_hosted_zone(Name=zone_name, CallerReference=unique("ref"))
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    clients = Clients(moto)
    assert preflight.hosted_zone_findings(clients, zone_id, f"ai.{zone_name}")[0].status == "ok"
    assert preflight.hosted_zone_findings(clients, zone_id, "ai.acme-corp.io")[0].status == "fail"
    assert preflight.hosted_zone_findings(clients, "Z0000000000000MISSING", zone_name)[0].status == "fail"
    assert preflight.hosted_zone_findings(clients, None, zone_name)[0].status == "ok"  # HTTP-01


# --- the secret an operator fills -------------------------------------------------------------------------


def test_llm_secret_missing_then_empty_then_set(moto: MotoServer) -> None:
    stack = unique("pf")
    clients = Clients(moto)
    (missing,) = preflight.secret_findings(clients, stack)
    assert missing.status == "warn", "before the first up the program has not created it yet"
    sm = moto.client("secretsmanager", region=REGION)
    arn = sm.create_secret(Name=f"ai-agents/{stack}/llm-api-key-AbCdEf")["ARN"]
    (empty,) = preflight.secret_findings(clients, stack)
    assert (empty.status, empty.key) == ("fail", f"ai-agents/{stack}/llm-api-key-AbCdEf")
    assert arn in empty.fix
    sm.put_secret_value(SecretId=arn, SecretString="sk-test")
    assert preflight.secret_findings(clients, stack)[0].status == "ok"


# --- quotas: VPCs (moto), Elastic IPs (recorded Service Quotas answer) -------------------------------------


def _config(stack: str = "production", **network: Any) -> StackConfig:
    config = load_stack_file(stack)
    if network:
        config = config.model_copy(update={"network": config.network.model_copy(update=network)})
    return config


def _eip_quota(stubbed: Any, value: float) -> Any:
    """Service Quotas answering as recorded (moto has no EC2 quotas; its VPC one is tested below)."""
    client, stubber = stubbed("service-quotas")
    stubber.add_response(
        "get_service_quota",
        {"Quota": {"ServiceCode": "vpc", "QuotaCode": "L-F678F1CE", "Value": 5.0}},
        {"ServiceCode": "vpc", "QuotaCode": "L-F678F1CE"},
    )
    stubber.add_response(
        "get_service_quota",
        {
            "Quota": {
                "ServiceCode": "ec2",
                "QuotaCode": "L-0263D0A3",
                "QuotaName": "EC2-VPC Elastic IPs",
                "Value": value,
            }
        },
        {"ServiceCode": "ec2", "QuotaCode": "L-0263D0A3"},
    )
    return client


def test_vpc_quota_from_moto(moto: MotoServer) -> None:
    assert preflight._quota(Clients(moto), "vpc", "L-F678F1CE", 0.0) == 5.0  # pyright: ignore[reportPrivateUsage]


def test_quotas_room_and_no_room(moto: MotoServer, stubbed: Any) -> None:
    # A region of its own: the counts are this test's (plus moto's default VPC).
    region = "ap-southeast-4"
    ec2 = moto.client("ec2", region=region)
    config = _config(nat_gateways="perAz", az_count=3)
    ok = preflight.quota_findings(Clients(moto, region, service_quotas=_eip_quota(stubbed, 5.0)), config)
    assert statuses(ok) == {"network": "ok", "network.natGateways": "ok"}
    for _ in range(3):
        ec2.allocate_address(Domain="vpc")
    for index in range(4):
        ec2.create_vpc(CidrBlock=f"10.{index}.0.0/16")
    full = preflight.quota_findings(Clients(moto, region, service_quotas=_eip_quota(stubbed, 5.0)), config)
    assert statuses(full) == {"network": "fail", "network.natGateways": "fail"}
    assert all("Service Quotas" in f.fix for f in full)
    # One NAT gateway fits where three do not.
    single = preflight.quota_findings(
        Clients(moto, region, service_quotas=_eip_quota(stubbed, 5.0)), _config(nat_gateways="single")
    )
    assert statuses(single)["network.natGateways"] == "ok", single


# --- orderable database class, offered cache version (recorded answers) -----------------------------------


def _orderable(engine_version: str, multi_az: bool) -> dict[str, Any]:
    return {
        "Engine": "postgres",
        "EngineVersion": engine_version,
        "DBInstanceClass": "db.r6g.large",
        "LicenseModel": "postgresql-license",
        "AvailabilityZones": [{"Name": "eu-west-1a"}, {"Name": "eu-west-1b"}],
        "MultiAZCapable": multi_az,
        "StorageType": "gp3",
        "SupportsStorageEncryption": True,
    }


@pytest.mark.parametrize(
    ("options", "key", "status"),
    [
        ([_orderable("16.9", True), _orderable("17.6", True)], "database.instanceClass", "ok"),
        ([_orderable("16.9", True), _orderable("170.1", True)], "database.instanceClass", "fail"),
        ([], "database.instanceClass", "fail"),
        ([_orderable("17.6", False)], "database.multiAz", "fail"),
    ],
)
def test_database_class_and_version_orderable(
    moto: MotoServer, stubbed: Any, options: list[dict[str, Any]], key: str, status: str
) -> None:
    config = _config("production")
    assert config.database.engine_version == "17" and config.database.multi_az
    client, stubber = stubbed("rds")
    stubber.add_response(
        "describe_orderable_db_instance_options",
        {"OrderableDBInstanceOptions": options},
        {"Engine": "postgres", "DBInstanceClass": config.database.instance_class},
    )
    (finding,) = preflight.database_findings(Clients(moto, rds=client), config)
    assert (finding.key, finding.status) == (key, status)


@pytest.mark.parametrize(("offered", "status"), [(["7.2", "8.0", "8.1"], "ok"), (["7.2", "8.1"], "fail")])
def test_cache_engine_version_offered(
    moto: MotoServer, stubbed: Any, offered: list[str], status: str
) -> None:
    config = _config("production")
    client, stubber = stubbed("elasticache")
    stubber.add_response(
        "describe_cache_engine_versions",
        {
            "CacheEngineVersions": [
                {"Engine": "valkey", "EngineVersion": v, "CacheParameterGroupFamily": f"valkey{v[0]}"}
                for v in offered
            ]
        },
        {"Engine": "valkey"},
    )
    (finding,) = preflight.cache_findings(Clients(moto, elasticache=client), config)
    assert (finding.key, finding.status) == ("cache.engineVersion", status)


# --- the command: exit codes, table and JSON ---------------------------------------------------------------


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI's own boto3 clients, pointed at moto through AWS_ENDPOINT_URL as an operator would."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    # moto answers 500 to the APIs it lacks (the default-quota lookup): no backoff between retries.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("aws_env")
def test_the_example_stack_is_not_ready_exit_1_with_json() -> None:
    result = CliRunner().invoke(app, ["preflight", "staging", "--json"])
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout.startswith("{"), (result.stdout[:300], result.stderr[:300])
    report = json.loads(result.stdout)
    assert report["ready"] is False and report["account"] == ACCOUNT
    failed = {(f["check"], f["key"]) for f in report["findings"] if f["status"] == "fail"}
    assert ("placeholders", "platform.domain") in failed
    assert ("admin-roles", "cluster.adminRoleArns[0]") in failed  # the example role does not exist


def _clean_stack_file(tmp_path: Path, admin_arn: str) -> Path:
    document = yaml.safe_load((REPO_ROOT / "Pulumi.staging.yaml").read_text(encoding="utf-8"))
    config = document["config"]
    config["ai-agents-platform:cluster"]["adminRoleArns"] = [admin_arn]
    config["ai-agents-platform:platform"].update(domain="ai.acme-corp.io", acmeEmail="ops@acme-corp.io")
    config["ai-agents-platform:app"]["corsOrigins"] = ["https://desk.acme-corp.io"]
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.mark.usefixtures("aws_env")
def test_a_ready_stack_exits_0_with_a_table(
    moto: MotoServer, stubbed: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another account than moto's default (123456789012, a placeholder the check refuses): moto keys its
    # state by the account of the credentials that assume_role hands out.
    account = "210987654321"
    credentials = moto.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{unique('pf-deploy')}", RoleSessionName="preflight"
    )["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    admin = unique("pf-admin")
    # A session of its own: boto3's default session would keep these credentials for every later test
    # in this process (the tenant secrets' store then looks in the wrong moto account).
    iam = boto3.Session().client("iam", region_name=REGION, endpoint_url=moto.url)
    iam.create_role(RoleName=admin, AssumeRolePolicyDocument="{}")
    path = _clean_stack_file(tmp_path, f"arn:aws:iam::{account}:role/{admin}")
    config = load_stack_file("staging", path)
    rds, rds_stub = stubbed("rds")
    cache, cache_stub = stubbed("elasticache")
    for _ in ("json", "table"):  # one recorded answer per run
        rds_stub.add_response(
            "describe_orderable_db_instance_options",
            {"OrderableDBInstanceOptions": [_orderable("17.6", True)]},
            {"Engine": "postgres", "DBInstanceClass": config.database.instance_class},
        )
        cache_stub.add_response(
            "describe_cache_engine_versions",
            {"CacheEngineVersions": [{"Engine": "valkey", "EngineVersion": config.cache.engine_version}]},
            {"Engine": "valkey"},
        )
    real = preflight.boto3_clients

    def clients(region: str) -> preflight.ClientFactory:
        made = real(region)  # the CLI's own clients (through AWS_ENDPOINT_URL) for what moto has
        return lambda service: {"rds": rds, "elasticache": cache}.get(service) or made(service)

    monkeypatch.setattr(preflight, "boto3_clients", clients)
    result = CliRunner().invoke(app, ["preflight", "staging", "--stack-file", str(path), "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    report = json.loads(result.stdout)
    assert report["ready"] is True and report["account"] == account
    assert {f["status"] for f in report["findings"]} == {"ok", "warn"}  # warn: the LLM key is not created yet
    table = CliRunner().invoke(app, ["preflight", "staging", "--stack-file", str(path)])
    assert table.exit_code == 0 and "not ready" not in table.stdout and "ready" in table.stdout


@pytest.mark.usefixtures("aws_env")
def test_an_unknown_stack_cannot_run_exit_2_in_one_line() -> None:
    result = CliRunner().invoke(app, ["preflight", "nope"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.usefixtures("aws_env")
def test_no_credentials_cannot_run_exit_2_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIALS:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(app, ["preflight", "staging"])
    assert result.exit_code == 2, result.output
    assert "no AWS credentials" in result.stderr and len(result.stderr.strip().splitlines()) == 1
