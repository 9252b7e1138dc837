"""The GitHub workflows: actionlint (with shellcheck on every run: step) and the security properties
a reviewer would otherwise have to check by eye."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent  # actionlint and shellcheck come with the dev extra


def load(path: Path) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def test_actionlint_with_shellcheck_passes() -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(BIN / "actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }\n"
    )
    result = subprocess.run(
        [str(BIN / "actionlint"), str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_actions_are_pinned_by_commit_sha(path: Path) -> None:
    for line in path.read_text().splitlines():
        match = re.search(r"uses:\s*(\S+)", line)
        if match and not match.group(1).startswith("./"):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", match.group(1)), line
            assert re.search(r"# v\d", line), f"say which version the SHA is: {line}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_least_privilege_by_default(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}, "top-level permissions are read-only"
    assert "pull_request_target" not in workflow["on"], "never run PR code with a write token"


def test_only_deploy_preview_and_drift_jobs_get_oidc_tokens() -> None:
    with_oidc = {
        f"{path.name}:{name}"
        for path in WORKFLOWS
        for name, job in load(path)["jobs"].items()
        if (job.get("permissions") or {}).get("id-token") == "write"
    }
    assert with_oidc == {
        "deploy-stack.yml:up",
        "deploy.yml:staging",
        "deploy.yml:production",
        "drift.yml:drift",
        "preview.yml:cloud",
    }


def test_fork_pr_job_sees_no_secrets_and_cloud_job_is_same_repo_only() -> None:
    preview = load(REPO_ROOT / ".github/workflows/preview.yml")
    assert "secrets." not in yaml.safe_dump(preview["jobs"]["offline"])
    assert "head.repo.full_name == github.repository" in preview["jobs"]["cloud"]["if"]


def test_deploys_of_one_stack_never_overlap() -> None:
    job = load(REPO_ROOT / ".github/workflows/deploy-stack.yml")["jobs"]["up"]
    assert job["concurrency"] == {"group": "deploy-${{ inputs.stack }}", "cancel-in-progress": False}
    assert job["environment"]["name"] == "${{ inputs.stack }}"
