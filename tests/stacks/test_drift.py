"""`python -m stacks drift` against a stand-in `pulumi` first on PATH: every exit path, for real.

The Automation API runs the stand-in as a subprocess, as it runs the CLI; the stand-in reports the
current CLI version, so the SDK takes its gRPC event path: it starts its event server in this process's
child (`python -m stacks`) and the stand-in streams the engine's events to it with the SDK's own stubs,
in the shapes and order the engine emits them (see fake_pulumi.py for the sources). What this does not
prove: that the real engine, providers and backend behave as recorded there."""

from __future__ import annotations

import json
import os
import re
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
    data = json.loads(report.read_text())
    assert data["drifted"] is False
    # The summaries came over the event stream: the SDK raises without them.
    assert data["summaries"] == {"refresh": {"same": 4}, "preview": {"same": 4}}
    commands = [c for c in calls(tmp_path) if {"refresh", "preview", "up", "destroy"} & set(c)]
    assert [next(a for a in c if not a.startswith("--")) for c in commands] == ["refresh", "preview"]
    assert "--preview-only" in commands[0]
    assert {"--refresh", "--expect-no-changes"} <= set(commands[1])
    # The events came over the SDK's gRPC server (a newer CLI than 3.205.0), not through a file.
    logs = [c[c.index("--event-log") + 1] for c in commands]
    assert all(re.fullmatch(r"tcp://127\.0\.0\.1:\d+", log) for log in logs), logs


def test_out_of_band_change_found_by_refresh_is_exit_1_with_the_resource_and_property(
    fake_cli: Path, tmp_path: Path
) -> None:
    result, report = drift("out-of-band", [fake_cli], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert data["drifted"] is True
    # The refresh's results come from its outputs events (its pre-events all say "refresh"); the
    # preview's from its planned steps, once each although the engine reports each step twice.
    assert [(r["phase"], r["op"], r["type"], r["properties"]) for r in data["resources"]] == [
        ("refresh", "update", "aws:ec2/securityGroup:SecurityGroup", ["ingress"]),
        ("refresh", "delete", "aws:cloudwatch/logGroup:LogGroup", []),
        ("preview", "update", "aws:ec2/securityGroup:SecurityGroup", ["ingress"]),
        ("preview", "create", "aws:cloudwatch/logGroup:LogGroup", []),
    ]
    assert data["summaries"]["refresh"] == {"same": 2, "update": 1, "delete": 1}
    assert "db-sg" in result.stdout
    markdown = (tmp_path / "drift.md").read_text()
    assert "| refresh | update | `aws:ec2/securityGroup:SecurityGroup` | `db-sg` | ingress |" in markdown
    assert "| refresh | delete | `aws:cloudwatch/logGroup:LogGroup` | `api-logs` | — |" in markdown


def test_program_drift_found_by_the_expect_no_changes_preview_is_exit_1(
    fake_cli: Path, tmp_path: Path
) -> None:
    result, report = drift("program-drift", [fake_cli], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    resources = json.loads(report.read_text())["resources"]
    # A replacement is one row: the engine's create-replacement and delete-replaced halves are not.
    assert [(r["phase"], r["op"], r["type"], r["properties"]) for r in resources] == [
        ("preview", "update", "aws:rds/instance:Instance", ["backupRetentionPeriod"]),
        ("preview", "replace", "aws:cloudwatch/logGroup:LogGroup", ["name"]),
    ]


def test_a_preview_failing_for_another_reason_is_exit_2_not_drift(fake_cli: Path, tmp_path: Path) -> None:
    # The preview planned an update before the program failed: not drift, and not "no drift" either.
    result, report = drift("preview-fails", [fake_cli], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "error: cannot check drift of 'staging': pulumi failed: ValueError: stacks/staging.yaml: "
        "database.instanceClass: Input should be a valid string"
    )
    assert "no drift" not in result.stdout
    assert not report.exists()


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("no-stack", "stack 'staging' does not exist in the current backend (pulumi stack ls)"),
        ("no-credentials", "no cloud credentials: configure AWS credentials (OIDC role in CI)"),
        (
            "no-backend",
            "no state backend selected: set PULUMI_BACKEND_URL to the bootstrap's backendUrl (s3://...) "
            "or run pulumi login with it",
        ),
        (
            "old-cli",
            "this Pulumi CLI does not suit the Automation API: Minimum version requirement failed. The"
            " minimum CLI version requirement is 3.1.0, your current CLI version is 3.0.0. Please update"
            " the Pulumi CLI.",
        ),
    ],
)
def test_cannot_run_is_exit_2_with_one_line(
    fake_cli: Path, tmp_path: Path, scenario: str, reason: str
) -> None:
    result, report = drift(scenario, [fake_cli], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == f"error: cannot check drift of 'staging': {reason}"
    assert "Traceback" not in result.stdout + result.stderr
    assert not report.exists()


def test_no_pulumi_cli_is_exit_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "calls.jsonl").touch()
    result, _ = drift("no-drift", [], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: cannot check drift of 'staging': no Pulumi CLI on PATH")
