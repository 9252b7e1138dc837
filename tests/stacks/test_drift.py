"""`python -m stacks drift` against a stand-in `pulumi` first on PATH: every exit path, for real
(the Automation API runs the stand-in as a subprocess and reads its event log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import REPO_ROOT

FAKE = Path(__file__).with_name("fake_pulumi.py")


@pytest.fixture
def fake_cli(tmp_path: Path) -> Path:
    """A directory holding an executable `pulumi` that runs the stand-in with this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "pulumi"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    launcher.chmod(0o755)
    return bin_dir


def drift(
    scenario: str, path_dirs: list[Path], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    report = tmp_path / "drift.json"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([*map(str, path_dirs), "/usr/bin", "/bin"]),
        "FAKE_PULUMI_SCENARIO": scenario,
        "FAKE_PULUMI_LOG": str(tmp_path / "calls.jsonl"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stacks",
            "drift",
            "staging",
            "--report",
            str(report),
            "--markdown",
            str(tmp_path / "drift.md"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, report


def calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def test_no_drift_is_exit_0_and_both_passes_are_read_only(fake_cli: Path, tmp_path: Path) -> None:
    result, report = drift("no-drift", [fake_cli], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(report.read_text())["drifted"] is False
    commands = [c for c in calls(tmp_path) if {"refresh", "preview", "up", "destroy"} & set(c)]
    assert [next(a for a in c if not a.startswith("--")) for c in commands] == ["refresh", "preview"]
    assert "--preview-only" in commands[0]
    assert {"--refresh", "--expect-no-changes"} <= set(commands[1])


def test_out_of_band_change_is_exit_1_with_the_resource_and_property(fake_cli: Path, tmp_path: Path) -> None:
    result, report = drift("out-of-band", [fake_cli], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert data["drifted"] is True
    assert {(r["phase"], r["type"], tuple(r["properties"])) for r in data["resources"]} == {
        ("refresh", "aws:ec2/securityGroup:SecurityGroup", ("ingress",)),
        ("preview", "aws:ec2/securityGroup:SecurityGroup", ("ingress",)),
    }
    assert "db-sg" in result.stdout
    assert (
        "| refresh | update | `aws:ec2/securityGroup:SecurityGroup` | `db-sg` | ingress |"
        in (tmp_path / "drift.md").read_text()
    )


def test_program_drift_found_by_the_expect_no_changes_preview_is_exit_1(
    fake_cli: Path, tmp_path: Path
) -> None:
    result, report = drift("program-drift", [fake_cli], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    resources = json.loads(report.read_text())["resources"]
    assert [(r["phase"], r["type"], r["properties"]) for r in resources] == [
        ("preview", "aws:rds/instance:Instance", ["backupRetentionPeriod"])
    ]


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("no-stack", "stack 'staging' does not exist in the current backend (pulumi stack ls)"),
        ("no-credentials", "no cloud credentials: configure AWS credentials (OIDC role in CI)"),
    ],
)
def test_cannot_run_is_exit_2_with_one_line(
    fake_cli: Path, tmp_path: Path, scenario: str, reason: str
) -> None:
    result, report = drift(scenario, [fake_cli], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: cannot check drift of 'staging': {reason}"
    assert "Traceback" not in result.stdout + result.stderr
    assert not report.exists()


def test_no_pulumi_cli_is_exit_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "calls.jsonl").touch()
    result, _ = drift("no-drift", [], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: cannot check drift of 'staging': no Pulumi CLI on PATH")
