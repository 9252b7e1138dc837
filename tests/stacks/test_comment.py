"""The PR comment's trusted side against hostile artifacts: the PR comes from the run, never from the
artifact; every artifact is one small regular UTF-8 JSON file matching the schema; whatever the PR
wrote is shown literally (checked by rendering the comment as GitHub-flavoured markdown)."""

from __future__ import annotations

import html
import json
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from infra.config import REPO_ROOT
from stacks import comment
from stacks.cli import app
from stacks.comment import CommentRefused, PreviewData, Run, build_payload, prepare, render_comment
from stacks.diff import diff_plans

SHA = "a" * 40
OTHER_SHA = "b" * 40
REPO = "acme/ai-agents-platform"
FORK = "mallory/ai-agents-platform"
PR = 42
STACK_URN = "urn:pulumi:staging::ai-agents-platform::"


def event(**run: Any) -> dict[str, Any]:
    workflow_run: dict[str, Any] = {
        "event": "pull_request",
        "head_sha": SHA,
        "head_branch": "feature",
        "head_repository": {"full_name": FORK},
        "id": 1234,
    }
    workflow_run.update(run)
    return {"repository": {"full_name": REPO}, "workflow_run": workflow_run}


def pull(
    number: int = PR, *, sha: str = SHA, ref: str = "feature", repo: str = FORK, **extra: Any
) -> dict[str, Any]:
    return {
        "number": number,
        "state": "open",
        "head": {"sha": sha, "ref": ref, "repo": {"full_name": repo}},
        "base": {"repo": {"full_name": REPO}},
        **extra,
    }


def resource(type_: str, name: str, **props: Any) -> dict[str, Any]:
    return {"urn": f"{STACK_URN}{type_}::{name}", "type": type_, "name": name, "props": props}


def plan(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"project": "ai-agents-platform", "stack": "staging", "resources": list(resources)}


def payload(stack: str = "staging", *, pr: int = PR, sha: str = SHA, **overrides: Any) -> dict[str, Any]:
    base = plan(resource("aws:ec2/subnet:Subnet", "private-0", cidrBlock="10.0.0.0/19"))
    head = plan(
        resource("aws:ec2/subnet:Subnet", "private-0", cidrBlock="10.0.32.0/19"),
        resource("aws:sns/topic:Topic", "alarms"),
    )
    verdict = {"policies": 30, "violations": []}
    data = build_payload(diff_plans(base, head), verdict, pr=pr, head_sha=sha, stack=stack)
    data.update(overrides)
    return data


def write_zip(path: Path, members: list[tuple[str, bytes]], *, symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = (stat.S_IFLNK | 0o777) if symlink else (stat.S_IFREG | 0o644)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def artifact(directory: Path, data: Any, name: str = "1001") -> Path:
    directory.mkdir(exist_ok=True)
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return write_zip(directory / f"{name}.zip", [("preview.json", raw)])


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "event": tmp_path / "event.json",
        "pulls": tmp_path / "pulls.json",
        "artifacts": tmp_path / "art",
    }
    paths["event"].write_text(json.dumps(event()))
    paths["pulls"].write_text(json.dumps([pull()]))
    paths["artifacts"].mkdir()
    return paths


def run_prepare(inputs: dict[str, Path]) -> tuple[int, str]:
    return prepare(inputs["event"], inputs["pulls"], inputs["artifacts"])


def refused(inputs: dict[str, Path], match: str) -> None:
    with pytest.raises(CommentRefused, match=match):
        run_prepare(inputs)


# --- the honest case --------------------------------------------------------------------------


def test_a_valid_run_comments_on_the_runs_pr_and_says_whose_numbers_they_are(inputs: dict[str, Path]) -> None:
    artifact(inputs["artifacts"], payload("staging"), "1")
    artifact(inputs["artifacts"], payload("production"), "2")
    number, body = run_prepare(inputs)
    assert number == PR
    assert body.startswith(comment.MARKER)
    assert "this pull request's own code" in body and "claim, not a verified plan" in body
    assert body.index("### `staging`") < body.index("### `production`")
    assert "**1** to add, **0** to update, **1** to replace, **0** to delete, 0 unchanged." in body
    assert "`aws:sns/topic:Topic` `alarms`" in body


def test_a_failed_head_plan_is_reported_from_the_data(inputs: dict[str, Path]) -> None:
    data = build_payload(None, None, pr=PR, head_sha=SHA, stack="staging", exit_code=2)
    artifact(inputs["artifacts"], data)
    _, body = run_prepare(inputs)
    assert "The plan of the PR's head failed (exit 2)" in body


def test_the_producer_writes_what_the_consumer_accepts(tmp_path: Path) -> None:
    base, head = tmp_path / "base.json", tmp_path / "head.json"
    base.write_text(json.dumps(plan(resource("aws:sns/topic:Topic", "a"))))
    head.write_text(json.dumps(plan(resource("aws:sns/topic:Topic", "b"))))
    out = tmp_path / "preview.json"
    result = CliRunner().invoke(
        app,
        [
            "preview-data", str(base), str(head), "--stack", "staging", "--pr", "7",
            "--head-sha", SHA, "-o", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = PreviewData.model_validate(json.loads(out.read_text()))
    assert (data.pr, data.counts.add, data.counts.delete, data.status) == (7, 1, 1, "planned")
    assert data.policy is not None  # the policy pack judged the head plan


# --- which PR: from the run ----------------------------------------------------------------------


def test_an_artifact_naming_another_pr_is_refused(inputs: dict[str, Path]) -> None:
    artifact(inputs["artifacts"], payload(pr=7))
    refused(inputs, r"claims pull request #7, but the run belongs to #42")


def test_an_artifact_naming_another_commit_is_refused(inputs: dict[str, Path]) -> None:
    artifact(inputs["artifacts"], payload(sha=OTHER_SHA))
    refused(inputs, "claims commit b{40}, but the run built a{40}")


def test_the_pr_is_the_one_whose_head_is_the_runs_commit_branch_and_repository() -> None:
    run = comment.run_from_event(event())
    decoys = [
        pull(1, sha=OTHER_SHA),  # same branch, another commit
        pull(2, repo="someone/ai-agents-platform"),  # same commit and branch name, another fork
        pull(3, ref="other"),
        pull(4, state="closed"),
        {**pull(5), "base": {"repo": {"full_name": "other/repo"}}},
        pull(True),  # type: ignore[arg-type] - a boolean is not a PR number
    ]
    assert comment.select_pull([*decoys, pull(PR)], run) == PR
    with pytest.raises(CommentRefused, match="no open pull request"):
        comment.select_pull(decoys, run)
    with pytest.raises(CommentRefused, match="2 open pull requests"):
        comment.select_pull([pull(PR), pull(PR + 1)], run)


def test_the_pr_list_may_come_as_pages(inputs: dict[str, Path]) -> None:
    inputs["pulls"].write_text(json.dumps([[pull(1, sha=OTHER_SHA)], [pull(PR)]]))
    artifact(inputs["artifacts"], payload())
    assert run_prepare(inputs)[0] == PR


@pytest.mark.parametrize(
    ("run", "match"),
    [
        ({"event": "push"}, "not by a pull request"),
        ({"head_sha": "HEAD"}, "not a commit SHA"),
        ({"head_repository": None}, "lacks head_repository"),
    ],
)
def test_a_run_that_is_not_a_pr_build_is_refused(
    inputs: dict[str, Path], run: dict[str, Any], match: str
) -> None:
    inputs["event"].write_text(json.dumps(event(**run)))
    artifact(inputs["artifacts"], payload())
    refused(inputs, match)


# --- how many artifacts --------------------------------------------------------------------------


def test_two_artifacts_for_one_stack_are_refused_not_last_one_wins(inputs: dict[str, Path]) -> None:
    artifact(inputs["artifacts"], payload("staging"), "1")
    artifact(inputs["artifacts"], payload("staging"), "2")
    refused(inputs, "two artifacts for the stack 'staging'")


def test_more_artifacts_than_stacks_are_refused(inputs: dict[str, Path]) -> None:
    for index in range(3):
        artifact(inputs["artifacts"], payload(), str(index))
    refused(inputs, "3 artifacts")


def test_no_artifact_is_refused(inputs: dict[str, Path]) -> None:
    refused(inputs, "no preview artifacts")


# --- what an artifact may be ---------------------------------------------------------------------


def test_a_symlink_in_the_zip_is_refused(inputs: dict[str, Path]) -> None:
    write_zip(inputs["artifacts"] / "1.zip", [("preview.json", b"/etc/passwd")], symlink=True)
    refused(inputs, "symbolic link")


@pytest.mark.parametrize(
    "name",
    [
        "../preview.json",
        "/preview.json",
        "x/../preview.json",
        "..\\preview.json",
        "preview.json/",
        "./preview.json",
    ],
)
def test_path_traversal_and_other_names_in_the_zip_are_refused(inputs: dict[str, Path], name: str) -> None:
    write_zip(inputs["artifacts"] / "1.zip", [(name, json.dumps(payload()).encode())])
    refused(inputs, "unexpected entry")


def test_a_second_file_in_the_zip_is_refused(inputs: dict[str, Path]) -> None:
    data = json.dumps(payload()).encode()
    write_zip(inputs["artifacts"] / "1.zip", [("preview.json", data), ("staging.md", b"@everyone")])
    refused(inputs, "2 entries")


def test_a_file_that_is_not_a_zip_is_refused(inputs: dict[str, Path]) -> None:
    (inputs["artifacts"] / "1.zip").write_bytes(b"preview.json")
    refused(inputs, "not a zip archive")


def test_an_oversize_zip_is_refused_before_it_is_opened(inputs: dict[str, Path]) -> None:
    (inputs["artifacts"] / "1.zip").write_bytes(b"\0" * (comment.MAX_ZIP_BYTES + 1))
    refused(inputs, "more than 1048576")


def test_a_zip_bomb_is_refused_by_its_uncompressed_size(inputs: dict[str, Path]) -> None:
    bomb = b'{"schema": "' + b" " * (comment.MAX_JSON_BYTES + 10) + b'"}'
    path = artifact(inputs["artifacts"], bomb)
    assert path.stat().st_size < 10_000  # small on disk, big inside
    refused(inputs, "more than 524288")


def test_non_utf8_is_refused(inputs: dict[str, Path]) -> None:
    artifact(inputs["artifacts"], json.dumps(payload()).encode().replace(b"alarms", b"al\xffrms"))
    refused(inputs, "not UTF-8")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"[1, 2", "not valid JSON"),
        (b'{"pr": NaN}', "not valid JSON"),
        (b'{"pr": 1, "pr": 42}', "duplicate keys"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_json_is_refused(inputs: dict[str, Path], raw: bytes, match: str) -> None:
    artifact(inputs["artifacts"], raw)
    refused(inputs, match)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"markdown": "# hello"}, "schema at markdown"),  # the old format's free markdown is no field
        ({"pr": "42"}, "schema at pr"),  # strict: a string is not a number
        ({"pr": True}, "schema at pr"),
        ({"stack": "../production"}, "schema at stack"),
        ({"schema": "v0"}, "schema at schema"),
        ({"added": [{"type": "x" * 501, "name": "n"}]}, "schema at added.0.type"),
        ({"added": [{"type": "t", "name": "n"}] * 2001}, "schema at added"),
        (
            {"counts": {"add": -1, "update": 0, "replace": 0, "delete": 0, "unchanged": 0}},
            "schema at counts.add",
        ),
    ],
)
def test_data_outside_the_schema_and_its_limits_is_refused(
    inputs: dict[str, Path], overrides: dict[str, Any], match: str
) -> None:
    artifact(inputs["artifacts"], payload(**overrides))
    refused(inputs, match)


def test_oversize_or_deep_property_values_are_refused(inputs: dict[str, Path]) -> None:
    deep: Any = "x"
    for _ in range(comment.MAX_VALUE_DEPTH + 1):
        deep = [deep]
    for value, match in [("v" * 3000, "longer than 2000"), (deep, "deeper than 8")]:
        for old in inputs["artifacts"].iterdir():
            old.unlink()
        change = {"path": "p", "old": None, "new": value}
        data = payload(changed=[{"type": "t", "name": "n", "replace": False, "changes": [change]}])
        artifact(inputs["artifacts"], data)
        refused(inputs, match)


# --- what the PR wrote is shown literally --------------------------------------------------------

HOSTILE = [
    "@everyone please approve",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](https://evil.example/phish)",
    "https://evil.example/autolink",
    "**bold** _it_ # heading",
    "`code` and ``double`` ```fence```",
    "`",
    "cell | breaker | table",
    "line\nbreak\n\n## injected heading",
    "<!-- ai-agents-platform:offline-plan -->",
    "right\u202eto-left \u200bzero-width\u0000nul",
    "#1 fixes GH-2 acme/other#3",
]


def hostile_payload() -> dict[str, Any]:
    added = [{"type": text, "name": text} for text in HOSTILE]
    changes = [{"path": text, "old": text, "new": {"k": text}} for text in HOSTILE]
    violations = [
        {"policy": text, "urn": text, "message": text, "enforcementLevel": "mandatory"} for text in HOSTILE
    ]
    return payload(
        added=added,
        removed=added,
        changed=[{"type": HOSTILE[0], "name": HOSTILE[1], "replace": True, "changes": changes}],
        policy={"policies": 1, "violations": violations},
        counts={"add": len(added), "update": 0, "replace": 1, "delete": len(added), "unchanged": 0},
    )


def rendered(body: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(body)


def test_injection_is_rendered_literally(inputs: dict[str, Path]) -> None:
    artifact(inputs["artifacts"], hostile_payload())
    _, body = run_prepare(inputs)
    page = rendered(body)
    outside_code = re.sub(r"<code>.*?</code>", "", page, flags=re.DOTALL)
    # No element the PR chose: every tag outside code spans is one our own template makes.
    assert set(re.findall(r"<([a-z0-9]+)", outside_code)) <= {
        "h2", "h3", "p", "blockquote", "strong", "em", "ul", "li", "table", "thead", "tbody", "tr", "th", "td"
    }  # fmt: skip
    for forbidden in ("@everyone", "evil.example", "<script", "onerror", "injected heading", "#1 fixes"):
        assert forbidden not in html.unescape(outside_code), forbidden
    # The PR cannot plant a second sticky marker: its copies are text inside code spans.
    assert body.startswith(comment.MARKER) and outside_code.count(comment.MARKER) == 1
    assert "\u202e" not in body and "\u200b" not in body and "\0" not in body
    # Each resource line is one list item with two code spans holding the text as written.
    items = re.findall(r"<li>(.*?)</li>", page, flags=re.DOTALL)
    for text in HOSTILE[:8]:
        spans = [html.unescape(s) for s in re.findall(r"<code>(.*?)</code>", items.pop(0), flags=re.DOTALL)]
        assert spans == [text, text]


def test_table_rows_keep_their_columns_whatever_the_cells_hold(inputs: dict[str, Path]) -> None:
    artifact(inputs["artifacts"], hostile_payload())
    _, body = run_prepare(inputs)
    for table in re.findall(r"<table>.*?</table>", rendered(body), flags=re.DOTALL):
        widths = {
            len(re.findall(r"<t[dh]", row)) for row in re.findall(r"<tr>.*?</tr>", table, flags=re.DOTALL)
        }
        assert len(widths) == 1, table


@pytest.mark.parametrize("text", ["`", "``", "a`b", "`start", "end`", "x``y```z", "", " "])
def test_code_spans_hold_any_backticks(text: str) -> None:
    page = rendered(comment.code(text))
    inner = html.unescape(re.fullmatch(r"<p><code>(.*)</code></p>\n", page, flags=re.DOTALL)[1])  # type: ignore[index]
    assert inner == (text if text.strip() else f"«{text}»" if text else "«empty»")


def test_long_comments_are_folded_under_githubs_limit() -> None:
    many = [{"type": "aws:sns/topic:Topic", "name": f"topic-{i:04d}"} for i in range(2000)]
    data = PreviewData.model_validate(
        payload(added=many, counts={"add": 2000, "update": 0, "replace": 0, "delete": 0, "unchanged": 0})
    )
    run = Run(REPO, FORK, "feature", SHA, "pull_request")
    body = render_comment([data], run, limit=5_000)
    assert len(body) < 5_500 and "folded to fit a comment" in body


# --- the trusted entry point needs nothing of the PR's and no SDK --------------------------------


def test_the_trusted_entry_point_imports_only_pydantic_and_the_standard_library(
    inputs: dict[str, Path],
) -> None:
    artifact(inputs["artifacts"], payload())
    out, number = inputs["event"].parent / "comment.md", inputs["event"].parent / "number"
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['stacks.comment', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('stacks.comment', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    heavy = sorted(m for m in ('typer', 'rich', 'pulumi', 'infra', 'policy', 'yaml') if m in sys.modules)\n"
        "    print('heavy:', heavy)\n"
        "    raise\n"
    )
    args = [
        f"--event={inputs['event']}", f"--pulls={inputs['pulls']}", f"--artifacts={inputs['artifacts']}",
        f"--out={out}", f"--number-out={number}",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout
    assert number.read_text() == f"{PR}\n" and out.read_text().startswith(comment.MARKER)


def test_a_refusal_exits_1_and_writes_nothing(inputs: dict[str, Path]) -> None:
    artifact(inputs["artifacts"], payload(pr=7))
    out, number = inputs["event"].parent / "comment.md", inputs["event"].parent / "number"
    result = CliRunner().invoke(
        app,
        [
            "comment", "--event", str(inputs["event"]), "--pulls", str(inputs["pulls"]),
            "--artifacts", str(inputs["artifacts"]), "--out", str(out), "--number-out", str(number),
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert not out.exists() and not number.exists()


@pytest.mark.parametrize(
    ("mode", "accepted"),
    [
        (0, True),
        (0o644, True),
        (stat.S_IFREG | 0o644, True),
        (stat.S_IFIFO | 0o644, False),
        (stat.S_IFCHR, False),
    ],
)
def test_only_regular_files_or_zips_without_unix_modes_are_read(
    inputs: dict[str, Path], mode: int, accepted: bool
) -> None:
    with zipfile.ZipFile(inputs["artifacts"] / "1.zip", "w") as archive:
        info = zipfile.ZipInfo("preview.json")
        info.external_attr = mode << 16
        archive.writestr(info, json.dumps(payload()))
    if accepted:
        assert run_prepare(inputs)[0] == PR
    else:
        refused(inputs, "not a regular file")
