"""``python -m policy check``: the checked-in fixtures, exit codes, bad input.

Exit codes and output formats are checked on real subprocesses. The 61 insecure fixtures go through
the same entry point (`policy.cli.main`) in this process: one interpreter start each cost a minute of
CPU for the suite and proved nothing the subprocess tests do not."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from policy.cli import main
from tests.policy.cases import CASES, FIXTURES, Case, expected_fixtures, fixture_path

REPO = Path(__file__).resolve().parents[2]


def run_check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "policy", "check", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_fixtures_are_up_to_date() -> None:
    for path, text in expected_fixtures().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run python -m tests.policy.cases"
        )


def run_check_in_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["check", *map(str, args)])
    return subprocess.CompletedProcess(
        ["policy", "check", *map(str, args)], code, out.getvalue(), err.getvalue()
    )


@pytest.fixture(scope="module")
def insecure_runs() -> dict[str, subprocess.CompletedProcess[str]]:
    return {case.policy: run_check_in_process(fixture_path(case), "--json") for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_insecure_fixture_is_rejected_by_its_policy(case: Case, insecure_runs: dict[str, Any]) -> None:
    run = insecure_runs[case.policy]
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    violated = {v["policy"] for v in report["violations"]}
    assert case.policy in violated
    assert violated <= {case.policy, *case.also}
    assert report["passed"] is False
    mine = [v for v in report["violations"] if v["policy"] == case.policy]
    assert mine[0]["urn"] == case.reported_urn()
    assert mine[0]["message"].startswith(case.detail)
    assert mine[0]["enforcementLevel"] == "mandatory"


def test_compliant_fixture_passes() -> None:
    run = run_check(FIXTURES / "compliant.json")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "passed" in run.stdout


def test_table_output_names_policy_urn_and_fix() -> None:
    run = run_check(fixture_path(CASES[0]))
    assert run.returncode == 1
    assert CASES[0].policy in run.stdout and "Fix:" in run.stdout and "FAILED" in run.stdout


def test_stack_option_overrides_the_plan_stack(tmp_path: Path) -> None:
    # Deletion protection is a production-only rule: the same plan passes when checked as staging.
    case = next(c for c in CASES if c.policy == "rds-deletion-protection")
    assert run_check(fixture_path(case), "--stack", "staging").returncode == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"stack": "staging"}', "'resources' must be a list"),
        ('{"stack": "staging", "resources": [{"type": "x"}]}', "resources[0] has no string 'urn'"),
    ],
)
def test_bad_plan_file_exits_2_with_one_line(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    run = run_check(path)
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0]
    assert "Traceback" not in run.stderr


def test_no_command_is_a_usage_error() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "policy"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
