"""The GitHub workflows: actionlint (with shellcheck on every run: step) and the security properties
a reviewer would otherwise have to check by eye."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
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
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w.-]+)*@[0-9a-f]{40}", match.group(1)), line
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


def step(workflow: str, job: str, name: str) -> dict[str, Any]:
    steps = load(REPO_ROOT / ".github/workflows" / workflow)["jobs"][job]["steps"]
    return next(s for s in steps if s.get("name") == name or s.get("id") == name)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_no_event_data_is_spliced_into_a_script(path: Path) -> None:
    """PR titles, branch names and run fields reach scripts through env:, never as ${{ }} in the text."""
    for job in load(path)["jobs"].values():
        for s in job.get("steps", []):
            script = s.get("run", "") + (s.get("with") or {}).get("script", "")
            assert not re.search(r"\$\{\{\s*(github\.event|github\.head_ref|inputs\.)", script), s


# --- preview-comment.yml: the trusted side of the PR comment -------------------------------------

COMMENT = "preview-comment.yml"


def test_comment_job_has_minimal_permissions_and_never_checks_out_pr_code() -> None:
    job = load(REPO_ROOT / ".github/workflows" / COMMENT)["jobs"]["comment"]
    assert job["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "write"}
    checkouts = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert len(checkouts) == 1 and set(checkouts[0]["with"]) == {"persist-credentials"}  # default branch
    text = yaml.safe_dump(job)
    assert "download-artifact" not in text, "artifacts are read as zips by stacks.comment, never extracted"
    assert "head_sha" not in text and "pull_requests" not in text  # the PR is looked up, then checked
    render = step(COMMENT, "comment", "render")
    assert "python -m stacks.comment" in render["run"]
    upsert = step(COMMENT, "comment", "Upsert the sticky comment")
    assert upsert["env"] == {"PR_NUMBER": "${{ steps.render.outputs.number }}"}
    assert "github-actions[bot]" in upsert["with"]["script"]


def bash_step(script: str, env: dict[str, str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


FAKE_GH = r"""#!/usr/bin/env bash
# Stands in for the GitHub CLI: records each call, answers from $FAKE/answers.
printf '%s\n' "$@" >> "$FAKE/calls"
printf -- '---\n' >> "$FAKE/calls"
case "$*" in
  *"/pulls"*) cat "$FAKE/answers/pulls.json" ;;
  *"/artifacts/"*"/zip"*) all="$*"; id=${all##*/artifacts/}; cat "$FAKE/answers/${id%%/*}.zip" ;;
  *"/artifacts"*) cat "$FAKE/answers/listing.txt" ;;
  *) echo "unexpected gh call: $*" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def comment_run(tmp_path: Path) -> dict[str, Path]:
    """A runner for preview-comment.yml: RUNNER_TEMP, the event, a fake gh with the API's answers."""
    from tests.stacks.test_comment import event, payload, pull

    fake, temp = tmp_path / "fake", tmp_path / "runner-temp"
    (fake / "bin").mkdir(parents=True)
    (fake / "answers").mkdir()
    temp.mkdir()
    gh = fake / "bin" / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(0o755)
    hostile_branch = "x&state=closed;$(touch pwned)"
    (tmp_path / "event.json").write_text(json.dumps(event(head_branch=hostile_branch)))
    (fake / "answers" / "pulls.json").write_text(json.dumps([pull(ref=hostile_branch)]))
    for artifact_id, stack in ((11, "staging"), (12, "production")):
        with zipfile.ZipFile(fake / "answers" / f"{artifact_id}.zip", "w") as archive:
            archive.writestr("preview.json", json.dumps(payload(stack)))
    (fake / "answers" / "listing.txt").write_text("11 300\n12 300\n")
    return {"fake": fake, "temp": temp, "event": tmp_path / "event.json", "root": tmp_path}


def run_comment_job(paths: dict[str, Path]) -> tuple[subprocess.CompletedProcess[str], Path]:
    output = paths["root"] / "github-output"
    env = {
        "FAKE": str(paths["fake"]),
        "PATH": f"{paths['fake'] / 'bin'}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
        "RUNNER_TEMP": str(paths["temp"]),
        "GITHUB_EVENT_PATH": str(paths["event"]),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_REPOSITORY": "acme/ai-agents-platform",
        "GH_TOKEN": "not-a-token",
        "RUN_ID": "1234",
        "HEAD_OWNER": "mallory",
        "HEAD_BRANCH": "x&state=closed;$(touch pwned)",
    }
    script = "\n".join(
        step(COMMENT, "comment", name)["run"]
        for name in ("Find the run's pull request, download its artifacts (zips, not extracted)", "render")
    )
    return bash_step(script, env), output


def test_comment_job_replayed_finds_the_pr_by_the_run_and_renders(comment_run: dict[str, Path]) -> None:
    result, output = run_comment_job(comment_run)
    assert result.returncode == 0, result.stdout + result.stderr
    assert output.read_text() == "number=42\n"
    body = (comment_run["temp"] / "comment.md").read_text()
    assert "### `staging`" in body and "### `production`" in body
    calls = (comment_run["fake"] / "calls").read_text().split("---\n")
    # The hostile branch name went to the API as one literal query field, and ran nothing.
    assert "head=mallory:x&state=closed;$(touch pwned)\n" in calls[0]
    assert not (REPO_ROOT / "pwned").exists() and not (comment_run["root"] / "pwned").exists()


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        ("11 300\n12 300\n13 300\n", "more preview artifacts than stacks"),
        ("11 2000000\n", "bytes: refused"),
        ("11;rm 300\n", "unexpected artifact listing"),
    ],
)
def test_comment_job_replayed_refuses_bad_listings(
    comment_run: dict[str, Path], listing: str, message: str
) -> None:
    (comment_run["fake"] / "answers" / "listing.txt").write_text(listing)
    result, output = run_comment_job(comment_run)
    assert result.returncode != 0 and message in result.stdout
    assert not output.exists()


def test_comment_job_replayed_refuses_an_artifact_for_another_pr(comment_run: dict[str, Path]) -> None:
    from tests.stacks.test_comment import payload

    with zipfile.ZipFile(comment_run["fake"] / "answers" / "12.zip", "w") as archive:
        archive.writestr("preview.json", json.dumps(payload("production", pr=1)))
    result, output = run_comment_job(comment_run)
    assert result.returncode != 0 and "claims pull request #1" in result.stderr
    assert not output.exists() and not (comment_run["temp"] / "comment.md").exists()


def test_preview_uploads_data_not_markdown() -> None:
    offline = load(REPO_ROOT / ".github/workflows/preview.yml")["jobs"]["offline"]
    plan_step = next(s for s in offline["steps"] if s.get("name") == "Plan base and head, diff as data")
    assert "stacks preview-data" in plan_step["run"] and "-o ../out/preview.json" in plan_step["run"]
    assert re.findall(r"\bout/[\w.$-]+", plan_step["run"]) == ["out/preview.json"]  # nothing else uploaded


# --- deploy trust boundaries: environments, refs, roles --------------------------------------------


def evaluate(expression: str, event: str, ref: str, stack: str | None = None) -> bool:
    """A GitHub `if:` of the shapes these workflows use (==, &&, ||, !, startsWith) for one trigger."""
    python = re.sub(r"startsWith\(([^,]+),\s*([^)]+)\)", r"(\1).startswith(\2)", expression)
    python = python.replace("&&", " and ").replace("||", " or ").replace("!(", " not (")
    names = {"github.event_name": repr(event), "github.ref": repr(ref), "inputs.stack": repr(stack)}
    for name, value in names.items():
        python = python.replace(name, value)
    assert not re.search(r"[a-z_]+\.[a-z_]+", python.replace(".startswith", "")), python
    return bool(eval(python.replace("\n", " "), {}))


TRIGGERS = {
    "push to main": ("push", "refs/heads/main", None),
    "dispatch staging from main": ("workflow_dispatch", "refs/heads/main", "staging"),
    "dispatch production from main": ("workflow_dispatch", "refs/heads/main", "production"),
    "dispatch production from a branch": ("workflow_dispatch", "refs/heads/feature", "production"),
    "dispatch staging from a branch": ("workflow_dispatch", "refs/heads/feature", "staging"),
    "release v1.2.0": ("release", "refs/tags/v1.2.0", None),
    "release of another tag": ("release", "refs/tags/nightly", None),
    "push to a branch": ("push", "refs/heads/feature", None),
}


@pytest.mark.parametrize(
    ("job", "runs_for"),
    [
        ("staging", {"push to main", "dispatch staging from main"}),
        ("production", {"dispatch production from main", "release v1.2.0"}),
    ],
)
def test_deploys_run_only_from_main_or_release_tags(job: str, runs_for: set[str]) -> None:
    expression = load(REPO_ROOT / ".github/workflows/deploy.yml")["jobs"][job]["if"]
    assert {name for name, trigger in TRIGGERS.items() if evaluate(expression, *trigger)} == runs_for


def test_deploy_job_uses_the_environment_matching_its_role_and_no_stored_token() -> None:
    up = load(REPO_ROOT / ".github/workflows/deploy-stack.yml")["jobs"]["up"]
    assert up["environment"]["name"] == "${{ inputs.stack }}"
    assert up["permissions"] == {"contents": "read", "id-token": "write", "attestations": "write"}
    credentials = next(s for s in up["steps"] if "configure-aws-credentials" in str(s.get("uses")))
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    pulumi = next(s for s in up["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@"))
    assert pulumi["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert pulumi["with"]["stack-name"] == "${{ inputs.stack }}"
    assert "PULUMI_ACCESS_TOKEN" not in yaml.safe_dump(up)


def test_deploy_pushes_attests_and_gates_the_images_before_the_full_update() -> None:
    """The images are pushed alone, attested (SBOM, provenance) and scan-gated by the project's command on
    their exact digests; only then does the update that rolls them out run."""
    steps = load(REPO_ROOT / ".github/workflows/deploy-stack.yml")["jobs"]["up"]["steps"]
    names = [s.get("name") or s.get("uses", "").split("@")[0] for s in steps]
    push, gate = names.index("Build and push the images (nothing runs them yet)"), names.index("Scan gate")
    full_up = max(n for n, s in enumerate(steps) if str(s.get("uses", "")).startswith("pulumi/actions@"))
    assert push < gate < full_up
    assert steps[push]["with"]["target"] == "${{ steps.image-targets.outputs.urns }}"
    assert str(steps[push]["with"]["target-dependents"]).lower() == "false"
    between = steps[push:gate]
    for image in ("api", "worker", "migrations"):
        digest = "${{ steps.digests.outputs." + image + "_digest }}"
        provenance = [
            s
            for s in between
            if "attest-build-provenance" in str(s.get("uses")) and s["with"]["subject-digest"] == digest
        ]
        assert len(provenance) == 1 and provenance[0]["with"]["push-to-registry"] is True
        sbom = [s for s in between if "sbom-action" in str(s.get("uses")) and digest in s["with"]["image"]]
        assert len(sbom) == 1 and sbom[0]["with"]["format"] == "cyclonedx-json"
        assert digest in steps[gate]["env"][image.upper()]
    assert steps[gate]["run"].startswith('.venv/bin/python -m stacks scan-gate "$STACK"')
    for job in ("staging", "production"):  # a called workflow gets no more than its caller grants
        caller = load(REPO_ROOT / ".github/workflows/deploy.yml")["jobs"][job]
        assert caller["permissions"]["attestations"] == "write"


def test_pr_preview_gets_only_the_read_only_role_and_no_stack_secrets() -> None:
    preview = load(REPO_ROOT / ".github/workflows/preview.yml")
    cloud = preview["jobs"]["cloud"]
    assert "environment" not in cloud, "no environment: the OIDC subject is repo:<owner>/<repo>:pull_request"
    assert cloud["permissions"] == {"contents": "read", "id-token": "write"}
    assert "secrets." not in yaml.safe_dump(preview), "no job of a PR's workflow reads a secret"
    credentials = next(s for s in cloud["steps"] if "configure-aws-credentials" in str(s.get("uses")))
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_PREVIEW_ROLE_ARN }}"
    run = step(
        "preview.yml", "cloud", "Preview from an empty stack (real providers, policy pack, read-only role)"
    )
    script = run["run"]
    # The stack's own backend and secrets provider are never used: an empty local stack, a throwaway passphrase.
    assert 'PULUMI_BACKEND_URL="file://$state"' in script and "--secrets-provider passphrase" in script
    assert "PULUMI_BACKEND_URL" not in str(run.get("env")) and "vars." not in str(run.get("env"))
    assert "sed -i '/^secretsprovider:/d; /^encryptedkey:/d'" in script


def test_drift_uses_its_environment_and_role_from_main_only() -> None:
    drift = load(REPO_ROOT / ".github/workflows/drift.yml")["jobs"]["drift"]
    assert drift["environment"] == "drift-${{ matrix.stack }}"
    assert drift["if"] == "github.ref == 'refs/heads/main'"
    credentials = next(s for s in drift["steps"] if "configure-aws-credentials" in str(s.get("uses")))
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DRIFT_ROLE_ARN }}"
    assert "PULUMI_ACCESS_TOKEN" not in yaml.safe_dump(drift)


def test_workflows_name_exactly_the_environments_and_variables_the_bootstrap_creates() -> None:
    from bootstrap.config import parse, read_stack_file
    from bootstrap.environments import environment_rules

    config = parse(read_stack_file(REPO_ROOT / "bootstrap" / "Pulumi.account.yaml"), "Pulumi.account.yaml")
    created = {rule.name for rule in environment_rules(config)}
    used = {f"drift-{s}" for s in ("staging", "production")} | {"staging", "production"}
    assert created == used
    text = "".join(p.read_text() for p in WORKFLOWS)
    variables = set(re.findall(r"vars\.(AWS_\w+_ROLE_ARN|PULUMI_BACKEND_URL|AWS_REGION)", text))
    assert variables == {
        "AWS_DEPLOY_ROLE_ARN", "AWS_DRIFT_ROLE_ARN", "AWS_PREVIEW_ROLE_ARN", "PULUMI_BACKEND_URL", "AWS_REGION"
    }  # fmt: skip
    bootstrap_source = (REPO_ROOT / "bootstrap" / "program.py").read_text()
    assert all(f'"{v}"' in bootstrap_source for v in variables)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_every_job_states_its_permissions(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        assert "permissions" in job, f"{path.name}:{name}"
        assert "write-all" not in str(job["permissions"]) and "read-all" not in str(job["permissions"])


def test_policy_sarif_reaches_code_scanning_from_a_job_that_runs_no_pr_code() -> None:
    jobs = load(REPO_ROOT / ".github/workflows/preview.yml")["jobs"]
    sarif_step = step("preview.yml", "offline", "Policy findings as SARIF")
    assert "policy check" in sarif_step["run"] and "--format sarif" in sarif_step["run"]
    upload = jobs["code-scanning"]
    assert upload["permissions"]["security-events"] == "write"
    assert "head.repo.full_name == github.repository" in upload["if"]
    assert all("run" not in s for s in upload["steps"])  # checkout, download, upload only
    assert any(
        str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif@") for s in upload["steps"]
    )
    assert "security-events" not in (jobs["offline"].get("permissions") or {})
