"""Per-stack knobs, the engine's view of props, and the CrossGuard entry point itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from components.cluster_settings import KUBERNETES_VERSIONS
from policy.checker import check_plan
from policy.pack import POLICIES, enforcement_level, initial_config
from policy.settings import PolicyConfigError, load_settings
from tests.policy.cases import CASES, DELETE, compliant_plan, find, insecure_plan, plan_document
from tests.policy.support import BY_NAME, fix, validate_resource

REPO = Path(__file__).resolve().parents[2]
RDS = "aws:rds/instance:Instance"


def db_props(**changes: object) -> dict[str, object]:
    props = dict(find(compliant_plan(), RDS, "db")["props"])
    props.update(changes)
    return props


def test_stack_settings_come_from_pulumi_policy_yaml() -> None:
    staging, production = load_settings("staging"), load_settings("production")
    assert production.production and not staging.production
    assert (staging.rds_min_backup_retention_days, production.rds_min_backup_retention_days) == (7, 14)
    assert production.rds_require_multi_az and not staging.rds_require_multi_az
    # Not restated in PulumiPolicy.yaml: both stacks allow exactly what a stack file may choose.
    assert staging.eks_allowed_versions == production.eks_allowed_versions == KUBERNETES_VERSIONS


def test_multi_az_and_deletion_protection_are_production_only_by_default() -> None:
    single_az = db_props(multiAz=False, deletionProtection=False, backupRetentionPeriod=7.0)
    for name in ("rds-multi-az", "rds-deletion-protection", "rds-backup-retention"):
        assert validate_resource(BY_NAME[name], RDS, single_az, stack="staging") == []
    assert validate_resource(BY_NAME["rds-multi-az"], RDS, single_az, stack="production")
    assert validate_resource(BY_NAME["rds-backup-retention"], RDS, single_az, stack="production")


def test_engine_policy_config_overrides_a_threshold() -> None:
    policy = BY_NAME["rds-backup-retention"]
    props = db_props(backupRetentionPeriod=7.0)
    found = validate_resource(policy, RDS, props, stack="staging", config={"rdsMinBackupRetentionDays": 10})
    assert found == [fix(policy, "RDS instance res keeps backups 7 day(s); the minimum on this stack is 10.")]
    assert validate_resource(policy, RDS, props, stack="staging", config={"rdsRequireMultiAz": True}) == []


def write_pack(tmp_path: Path, config: str) -> Path:
    path = tmp_path / "PulumiPolicy.yaml"
    path.write_text(f"runtime: python\nconfig:\n{config}", encoding="utf-8")
    return path


def test_per_stack_enforcement_levels(tmp_path: Path) -> None:
    path = write_pack(
        tmp_path,
        "  defaults: {policies: {k8s-probes: advisory}}\n  stacks:\n    dev: {enforcementLevel: advisory, policies: {k8s-ingress-tls: disabled}}\n",
    )
    prod, dev = load_settings("production", path), load_settings("dev", path)
    assert enforcement_level(BY_NAME["k8s-probes"], prod) == EnforcementLevel.ADVISORY
    assert enforcement_level(BY_NAME["rds-multi-az"], prod) == EnforcementLevel.MANDATORY
    assert enforcement_level(BY_NAME["rds-multi-az"], dev) == EnforcementLevel.ADVISORY
    assert enforcement_level(BY_NAME["k8s-ingress-tls"], dev) == EnforcementLevel.DISABLED
    assert len(initial_config(dev)) == len(POLICIES)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "  defaults: {rdsMinBackupDays: 7}\n",
            "config.defaults.rdsMinBackupDays: Extra inputs are not permitted",
        ),
        (
            "  stacks: {production: {rdsMinBackupRetentionDays: 0}}\n",
            "config.stacks.production.rdsMinBackupRetentionDays",
        ),
        ("  defaults: {eksAllowedVersions: ['latest']}\n", "config.defaults.eksAllowedVersions"),
        ("  defaults: {policies: {k8s-probes: sometimes}}\n", "config.defaults.policies.k8s-probes"),
        ("  other: {}\n", "config.other: unknown key"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, config: str, expected: str) -> None:
    with pytest.raises(PolicyConfigError, match=expected.replace(".", r"\.").replace("[", r"\[")):
        load_settings("production", write_pack(tmp_path, config))


def test_disabled_policy_is_skipped_and_advisory_does_not_fail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_pack(
        tmp_path,
        "  stacks: {production: {policies: {rds-multi-az: advisory, rds-iam-authentication: disabled}}}\n",
    )
    monkeypatch.setattr("policy.settings.PACK_FILE", path)
    plan = compliant_plan()
    db = find(plan, RDS, "db")["props"]
    db.update(multiAz=False, iamDatabaseAuthenticationEnabled=False)
    report = check_plan(plan_document(plan))
    assert [(v.policy, v.enforcement_level) for v in report.violations] == [("rds-multi-az", "advisory")]
    assert report.passed and report.mandatory_count == 0
    assert report.to_json()["passed"] is True


def test_props_as_the_engine_hands_them_over() -> None:
    # Under the engine, props are read-only Mapping/Sequence proxies, not dicts and lists.
    for case in CASES:
        policy = BY_NAME[case.policy]
        if not hasattr(policy, "validate") or case.policy.startswith(
            (
                "images-",
                "k8s-deployment-has",
                "ecr-lifecycle",
                "vpc-flow",
                "data-tier",
                "eks-node-groups",
                "monitoring-installed",
                "data-store-alarms",
                "production-stateful",
                "stack-monthly-budget",
                "gateway-http-listener",
                "gateway-cross-namespace",
                "gateway-namespace-default-deny",
            )
        ):
            continue
        target = find(insecure_plan(case), *case.target)
        found = validate_resource(
            policy,
            target["type"],
            unknown_checking_proxy(target["props"]),
            name=target["name"],
            stack=case.stack,
        )
        assert found == [fix(policy, case.detail)], case.policy


def test_unknown_values_surface_as_the_engines_unknown_error() -> None:
    props = unknown_checking_proxy(db_props(publiclyAccessible=UNKNOWN_STRING_VALUE))
    with pytest.raises(UnknownValueError):
        validate_resource(BY_NAME["rds-not-publicly-accessible"], RDS, props)


# Their deleted property matters only next to another one (Performance Insights enabled, a pod
# template with containers): with no props at all there is nothing for them to judge.
_ONLY_WHEN_SOMETHING_ELSE_IS_SET = frozenset(
    {"rds-performance-insights-cmk", "k8s-seccomp-runtime-default", "k8s-resources-set", "k8s-probes"}
)


def test_missing_values_are_not_a_crash() -> None:
    """A resource with no props at all is judged, not crashed on, and it fails closed: every
    violation a case gets by deleting properties is also reported when nothing is set."""
    for policy in POLICIES:
        for resource in compliant_plan():
            if hasattr(policy, "validate") and type(policy).__name__ == "ResourceValidationPolicy":
                found = validate_resource(policy, resource["type"], {}, name=resource["name"])
                assert isinstance(found, list), policy.name
    deleting = [
        case
        for case in CASES
        if isinstance(case.change, dict)
        and all(value is DELETE for value in case.change.values())
        and type(BY_NAME[case.policy]).__name__ == "ResourceValidationPolicy"
        and case.policy not in _ONLY_WHEN_SOMETHING_ELSE_IS_SET
    ]
    assert any(case.policy == "rds-storage-encrypted-cmk" for case in deleting)
    for case in deleting:
        type_, name = case.target
        found = validate_resource(BY_NAME[case.policy], type_, {}, name=name, stack=case.stack)
        assert fix(BY_NAME[case.policy], case.detail) in found, case.policy


def test_rds_storage_not_encrypted_is_reported_even_with_a_cmk() -> None:
    """The storageEncrypted branch on its own: a kmsKeyId does not stand in for encryption."""
    policy = BY_NAME["rds-storage-encrypted-cmk"]
    found = validate_resource(policy, RDS, db_props(storageEncrypted=False))
    assert found == [fix(policy, "RDS instance res does not set storageEncrypted=true.")]
    assert validate_resource(policy, RDS, {"kmsKeyId": db_props()["kmsKeyId"]}) == found


def test_the_engine_entry_point_serves_the_pack() -> None:
    """What `pulumi preview --policy-pack policy` runs: python -m pulumi.policy <engine> <pack dir>."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(REPO / "policy")],
        cwd=REPO / "policy",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PULUMI_STACK": "production"},
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            info = analyzer_pb2_grpc.AnalyzerStub(channel).GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
        assert info.name == "ai-agents-platform-security"
        assert {p.name for p in info.policies} == {p.name for p in POLICIES}
        assert set(info.initialConfig) == {p.name for p in POLICIES}
    finally:
        process.kill()
        process.wait(timeout=10)


def test_checker_report_json_shape() -> None:
    report = check_plan(json.loads(json.dumps(plan_document(compliant_plan()))))
    assert report.to_json() == {
        "policyPack": "ai-agents-platform-security",
        "stack": "production",
        "policies": len(POLICIES),
        "violations": [],
        "passed": True,
    }


def test_docs_list_every_policy_and_knob() -> None:
    from pydantic.alias_generators import to_camel

    from policy.settings import PolicySettings

    docs = (REPO / "docs" / "policy.md").read_text(encoding="utf-8")
    missing = [p.name for p in POLICIES if f"`{p.name}`" not in docs]
    knobs = [to_camel(k) for k in PolicySettings.model_fields if k != "stack"]
    assert missing == [] and [k for k in knobs if f"`{k}`" not in docs] == []
