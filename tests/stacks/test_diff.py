"""`python -m stacks diff`: synthetic plans for each kind of change, the folding limit, bad files, and
the PR preview workflow's offline steps replayed locally (plan base and head worktrees, then diff)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import REPO_ROOT
from stacks.comment import prepare
from stacks.diff import diff_plans, render
from tests.stacks.test_comment import PR, SHA, event, pull

STACK = "urn:pulumi:staging::ai-agents-platform::"


def resource(type_: str, name: str, **props: Any) -> dict[str, Any]:
    return {"urn": f"{STACK}{type_}::{name}", "type": type_, "name": name, "props": props}


def plan(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"project": "ai-agents-platform", "stack": "staging", "resources": list(resources)}


BASE = plan(
    resource("aws:ec2/subnet:Subnet", "private-0", cidrBlock="10.0.0.0/19", tags={"a": "1"}),
    resource("aws:rds/instance:Instance", "db", instanceClass="db.t4g.medium", masterPassword="[secret]"),
    resource("aws:sns/topic:Topic", "alarms"),
)
HEAD = plan(
    resource("aws:ec2/subnet:Subnet", "private-0", cidrBlock="10.0.32.0/19", tags={"a": "1"}),
    resource("aws:rds/instance:Instance", "db", instanceClass="db.r6g.large", masterPassword="[secret]"),
    resource("aws:ecr/repository:Repository", "api", imageTagMutability="IMMUTABLE"),
)


def test_added_removed_updated_and_replaced_are_told_apart() -> None:
    diff = diff_plans(BASE, HEAD)
    assert [r["name"] for r in diff.added] == ["api"]
    assert [r["name"] for r in diff.removed] == ["alarms"]
    by_name = {d.urn.rsplit("::", 1)[-1]: d for d in diff.changed}
    assert by_name["private-0"].replaces  # a subnet's CIDR cannot change in place
    assert not by_name["db"].replaces
    assert [(c.path, c.old, c.new) for c in by_name["db"].changes] == [
        ("instanceClass", "db.t4g.medium", "db.r6g.large")
    ]
    text = render(diff)
    assert "**1** to add, **1** to update, **1** to replace, **1** to delete, 0 unchanged." in text
    assert text.index("#### replace") < text.index("#### update"), "replacements come first"


def test_secrets_are_never_shown_as_changed() -> None:
    """Plans hold "[secret]" for every secret, so a rotated secret is invisible and never printed."""
    assert "masterPassword" not in render(diff_plans(BASE, HEAD))


def test_identical_plans_say_so() -> None:
    assert "No resource changes." in render(diff_plans(BASE, BASE))


def test_large_diffs_fold_and_say_what_they_folded() -> None:
    many = plan(*[resource("aws:ec2/subnet:Subnet", f"s{i}", cidrBlock=f"10.{i}.0.0/24") for i in range(200)])
    moved = plan(
        *[resource("aws:ec2/subnet:Subnet", f"s{i}", cidrBlock=f"10.{i}.1.0/24") for i in range(200)]
    )
    text = render(diff_plans(many, moved), limit=4_000)
    assert len(text) < 4_500
    assert "200** to replace" in text
    folded = int(text.rsplit("_", 2)[-2].split()[0])
    shown = text.count("#### replace")
    assert folded > 0 and folded + shown == 200


def test_policy_verdict_is_shown() -> None:
    verdict = {
        "policies": 3,
        "violations": [{"policy": "rds-not-public", "urn": "u", "message": "make it private"}],
    }
    text = render(diff_plans(BASE, HEAD), verdict)
    assert "**Policy:** 1 violation(s)" in text and "rds-not-public" in text


def cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stacks", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("{not json", "not a JSON plan"), ('{"resources": 3}', "not a plan")],
)
def test_bad_plan_files_are_exit_2_with_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(BASE))
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    result = cli("diff", str(good), str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def git(*args: str, cwd: Path) -> str:
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def worktrees(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """base: HEAD as committed; head: HEAD plus a PR that changes the staging database class."""
    base, head = tmp_path / "base", tmp_path / "head"
    git("worktree", "add", "--detach", str(base), "HEAD", cwd=REPO_ROOT)
    git("worktree", "add", "--detach", str(head), "HEAD", cwd=REPO_ROOT)
    stack_file = head / "Pulumi.staging.yaml"
    stack_file.write_text(
        stack_file.read_text().replace("instanceClass: db.t4g.medium", "instanceClass: db.t4g.large")
    )
    git("commit", "-qam", "PR: bigger staging database", cwd=head)
    yield base, head
    for tree in (base, head):
        git("worktree", "remove", "--force", str(tree), cwd=REPO_ROOT)


def test_preview_workflow_offline_steps(worktrees: tuple[Path, Path], tmp_path: Path) -> None:
    """What preview.yml runs for a fork PR (plan base, plan head, diff, the data), then preview-comment.yml."""
    base, head = worktrees
    plans = tmp_path / "plans"  # never inside a worktree: a plan clears its --out directory
    for tree in (base, head):
        result = cli("plan", "staging", "--out", str(plans / tree.name), cwd=tree)
        assert result.returncode == 0, result.stderr
    comment = tmp_path / "comment.md"
    result = cli(
        "diff", str(plans / "base" / "plan.json"), str(plans / "head" / "plan.json"), "-o", str(comment)
    )
    assert result.returncode == 0, result.stderr
    text = comment.read_text()
    assert "| `instanceClass` | `db.t4g.medium` | `db.t4g.large` |" in text
    # The monthly delta comes before the counts (after any lost-state warning): (db.t4g.large -
    # db.t4g.medium) x 730 h at the table's prices.
    assert text.index("**Estimated cost: +$52.56/month**") < text.index(" to add, ")
    # The database changes in place; the new commit also means new image digests, so the Deployments
    # roll and the migrations Job (named from its digest) is replaced: exactly what a real PR shows.
    assert "#### update: `aws:rds/instance:Instance`" in text
    assert "#### replace: `kubernetes:batch/v1:Job`" in text
    # The comment's data (preview.json), uploaded as the artifact's only file, and the trusted side's
    # rendering of it for the run's PR.
    data = tmp_path / "out" / "preview.json"
    data.parent.mkdir()
    result = cli(
        "preview-data", str(plans / "base" / "plan.json"), str(plans / "head" / "plan.json"),
        "--stack", "staging", "--pr", str(PR), "--head-sha", SHA, "-o", str(data),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    with zipfile.ZipFile(artifacts / "1.zip", "w") as archive:
        archive.write(data, "preview.json")
    (tmp_path / "event.json").write_text(json.dumps(event()))
    (tmp_path / "pulls.json").write_text(json.dumps([pull()]))
    number, body = prepare(tmp_path / "event.json", tmp_path / "pulls.json", artifacts)
    assert number == PR
    assert "| `instanceClass` | `db.t4g.medium` | `db.t4g.large` |" in body
    assert "**Estimated cost: +$52.56/month**" in body
    assert "**update** `aws:rds/instance:Instance`" in body
