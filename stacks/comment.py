"""The PR comment of the offline plan, rendered on the trusted side from untrusted structured data.

Two halves, two trust levels:

- **Untrusted** (``preview.yml``, the PR's own code, no credentials): :func:`build_payload` turns the
  plan diff into JSON data (:class:`PreviewData`), one ``preview.json`` per stack, uploaded as an
  artifact. A PR can change this code and the workflow that runs it, so nothing in it is believed.
- **Trusted** (``preview-comment.yml``, ``workflow_run``, a write token): :func:`prepare` takes the PR
  from the triggering run through the GitHub API (the open PR whose head SHA, head branch and head
  repository are the run's), reads each artifact zip without extracting it, validates its JSON against
  the schema and its size limits, refuses any claim that disagrees with the run (another PR number,
  another commit, two artifacts for one stack), and renders the comment itself. Every string that
  came from the PR is shown as an inline code span (GitHub renders no markdown, HTML, link or
  @mention inside one), control and bidirectional characters are replaced, and the comment says that
  its numbers are the PR's own claim.

The trusted side runs as ``python -m stacks.comment`` with only pydantic installed (nothing of the
PR's is executed); ``python -m stacks comment`` is the same for an operator.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import stat
import sys
import unicodedata
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from stacks.diff import Caution as DiffCaution
    from stacks.diff import PlanDiff

SCHEMA_ID = "ai-agents-platform/offline-plan-diff/v1"
MARKER = "<!-- ai-agents-platform:offline-plan -->"
STACKS: tuple[str, ...] = ("staging", "production")
Stack = Literal["staging", "production"]

# Size limits. An artifact holds one small JSON file; anything bigger is not ours.
MAX_ARTIFACTS = len(STACKS)
MAX_ZIP_BYTES = 1024 * 1024
MAX_JSON_BYTES = 512 * 1024
MAX_TEXT = 500  # one type, name, path, policy name or message
MAX_VALUE_JSON = 2_000  # one property value, serialised
MAX_VALUE_DEPTH = 8
MAX_ITEMS = 2_000  # resources per list
MAX_CHANGES = 200  # property changes per resource
MAX_VIOLATIONS = 500
MAX_COST_CHANGES = 8  # the cost delta's "what changed" lines (stacks/cost.py shows as many)
MAX_USD = 10.0**9
MAX_COUNT = 1_000_000
MEMBER = "preview.json"

# What the comment shows of each kind of item before folding the rest into a count.
SHOW_TEXT = 120
SHOW_VALUE = 80
COMMENT_LIMIT = 60_000  # GitHub's limit is 65,536 characters


class CommentRefused(Exception):
    """The artifacts or the run cannot be trusted for a comment; no comment is posted."""


# --- the schema ---------------------------------------------------------------------------------


class _Data(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, alias_generator=to_camel, populate_by_name=True
    )


Text = Annotated[str, Field(max_length=MAX_TEXT)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return 0


def _bounded_value(value: JsonValue) -> JsonValue:
    if _depth(value) > MAX_VALUE_DEPTH:
        raise ValueError(f"nested deeper than {MAX_VALUE_DEPTH} levels")
    if len(json.dumps(value)) > MAX_VALUE_JSON:
        raise ValueError(f"longer than {MAX_VALUE_JSON} characters as JSON")
    return value


class ResourceRef(_Data):
    type: Text
    name: Text


class PropertyChange(_Data):
    path: Text
    old: JsonValue
    new: JsonValue

    @field_validator("old", "new")
    @classmethod
    def _bounded(cls, value: JsonValue) -> JsonValue:
        return _bounded_value(value)


class ChangedResource(_Data):
    type: Text
    name: Text
    replace: bool
    changes: list[PropertyChange] = Field(max_length=MAX_CHANGES)


class Violation(_Data):
    policy: Text
    urn: Text | None
    message: Text
    enforcement_level: Literal["advisory", "mandatory", "remediate", "disabled"]


class Caution(_Data):
    """A replace or delete of a stateful or protected resource, or a version going down (stacks/diff.py)."""

    kind: Literal["delete", "replace", "downgrade"]
    type: Text
    name: Text
    protected: bool = False
    path: Text | None = None
    old: JsonValue = None
    new: JsonValue = None

    @field_validator("old", "new")
    @classmethod
    def _bounded(cls, value: JsonValue) -> JsonValue:
        return _bounded_value(value)


class PolicyVerdict(_Data):
    policies: Count
    violations: list[Violation] = Field(max_length=MAX_VIOLATIONS)


class CostDelta(_Data):
    """The estimated monthly cost before and after (stacks/cost.py) and what changed it."""

    before_usd: float = Field(ge=0, le=MAX_USD)
    after_usd: float = Field(ge=0, le=MAX_USD)
    changes: list[Text] = Field(max_length=MAX_COST_CHANGES)


class Counts(_Data):
    add: Count
    update: Count
    replace: Count
    delete: Count
    unchanged: Count


class PreviewData(_Data):
    """One stack's offline plan diff, as the PR's code claims it (``preview.json``)."""

    schema_id: Literal["ai-agents-platform/offline-plan-diff/v1"] = Field(alias="schema")
    pr: int = Field(gt=0, lt=10**9)
    head_sha: str = Field(pattern=r"^[0-9a-f]{40}$")
    stack: Stack
    status: Literal["planned", "head-plan-failed"]
    exit_code: int = Field(ge=0, le=255)
    counts: Counts
    policy: PolicyVerdict | None
    added: list[ResourceRef] = Field(max_length=MAX_ITEMS)
    removed: list[ResourceRef] = Field(max_length=MAX_ITEMS)
    changed: list[ChangedResource] = Field(max_length=MAX_ITEMS)
    cautions: list[Caution] = Field(default_factory=list[Caution], max_length=MAX_ITEMS)
    cost: CostDelta | None = None


def json_schema() -> dict[str, Any]:
    """The artifact's JSON Schema (documentation; validation is the pydantic model above)."""
    return PreviewData.model_json_schema(by_alias=True)


# --- the untrusted side: the PR's code writes the data ------------------------------------------


def _ref(resource: Mapping[str, Any]) -> dict[str, str]:
    return {
        "type": str(resource.get("type", ""))[:MAX_TEXT],
        "name": str(resource.get("name", ""))[:MAX_TEXT],
    }


def _value(value: Any) -> JsonValue:
    """A property value as data, cut to the schema's limits (the comment shows less anyway)."""
    text = json.dumps(value, default=str)
    if len(text) > MAX_VALUE_JSON or _depth(value) > MAX_VALUE_DEPTH:
        return text[: MAX_VALUE_JSON // 2] + "…"
    loaded: JsonValue = json.loads(text)
    return loaded


def _caution(caution: DiffCaution) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "kind": caution.kind,
        "type": caution.type[:MAX_TEXT],
        "name": caution.name[:MAX_TEXT],
        "protected": caution.protected,
    }
    if caution.change is not None:
        payload |= {
            "path": caution.change.path[:MAX_TEXT],
            "old": _value(caution.change.old),
            "new": _value(caution.change.new),
        }
    return payload


def build_payload(
    diff: PlanDiff | None,
    verdict: Mapping[str, Any] | None,
    *,
    pr: int,
    head_sha: str,
    stack: str,
    exit_code: int = 0,
    cost: tuple[float, float, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """``preview.json`` for one stack; ``diff`` is None when the head plan failed (``exit_code``).
    ``cost``: the estimated monthly cost before and after, and what changed it (stacks/cost.py)."""
    payload: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "pr": pr,
        "headSha": head_sha,
        "stack": stack,
        "status": "planned" if diff is not None else "head-plan-failed",
        "exitCode": exit_code,
        "counts": {"add": 0, "update": 0, "replace": 0, "delete": 0, "unchanged": 0},
        "policy": None,
        "added": [],
        "removed": [],
        "changed": [],
    }
    if cost is not None:
        before, after, changes = cost
        payload["cost"] = {
            "beforeUsd": round(float(before), 2),
            "afterUsd": round(float(after), 2),
            "changes": [str(c)[:MAX_TEXT] for c in list(changes)[:MAX_COST_CHANGES]],
        }
    if verdict is not None:
        payload["policy"] = {
            "policies": int(verdict.get("policies", 0)),
            "violations": [
                {
                    "policy": str(v.get("policy", ""))[:MAX_TEXT],
                    "urn": str(v["urn"])[:MAX_TEXT] if v.get("urn") else None,
                    "message": str(v.get("message", ""))[:MAX_TEXT],
                    "enforcementLevel": str(v.get("enforcementLevel", "advisory")),
                }
                for v in list(verdict.get("violations") or [])[:MAX_VIOLATIONS]
            ],
        }
    if diff is None:
        return payload
    from stacks.diff import cautions  # the untrusted side only: the renderer needs no plan code

    replaced = sum(1 for d in diff.changed if d.replaces)
    payload["counts"] = {
        "add": len(diff.added),
        "update": len(diff.changed) - replaced,
        "replace": replaced,
        "delete": len(diff.removed),
        "unchanged": diff.unchanged,
    }
    payload["cautions"] = [_caution(c) for c in cautions(diff)[:MAX_ITEMS]]
    payload["added"] = [_ref(r) for r in diff.added[:MAX_ITEMS]]
    payload["removed"] = [_ref(r) for r in diff.removed[:MAX_ITEMS]]
    payload["changed"] = [
        {
            "type": d.type[:MAX_TEXT],
            "name": d.urn.rsplit("::", 1)[-1][:MAX_TEXT],
            "replace": d.replaces,
            "changes": [
                {"path": c.path[:MAX_TEXT], "old": _value(c.old), "new": _value(c.new)}
                for c in d.changes[:MAX_CHANGES]
            ],
        }
        for d in sorted(diff.changed, key=lambda d: not d.replaces)[:MAX_ITEMS]
    ]
    return payload


# --- the trusted side: which PR, from the run ----------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What the ``workflow_run`` event says about the run that produced the artifacts."""

    repository: str  # this repository, owner/name
    head_repository: str  # where the PR's branch lives (a fork, or this repository)
    head_branch: str
    head_sha: str
    event: str


def _get(value: Any, *keys: str) -> Any:
    """``value[k1][k2]…``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = cast(dict[str, Any], value).get(key)
    return value


def run_from_event(event: Mapping[str, Any]) -> Run:
    """The triggering run, from the event payload GitHub wrote (``$GITHUB_EVENT_PATH``)."""
    fields = {
        "repository": _get(event, "repository", "full_name"),
        "head_repository": _get(event, "workflow_run", "head_repository", "full_name"),
        "head_branch": _get(event, "workflow_run", "head_branch"),
        "head_sha": _get(event, "workflow_run", "head_sha"),
        "event": _get(event, "workflow_run", "event"),
    }
    missing = sorted(k for k, v in fields.items() if not isinstance(v, str) or not v)
    if missing:
        raise CommentRefused(f"the workflow_run event lacks {', '.join(missing)}")
    run = Run(**fields)
    if run.event != "pull_request":
        raise CommentRefused(f"the run was triggered by {run.event!r}, not by a pull request")
    if not re.fullmatch(r"[0-9a-f]{40}", run.head_sha):
        raise CommentRefused("the run's head SHA is not a commit SHA")
    return run


def select_pull(pulls: Sequence[Any], run: Run) -> int:
    """The number of the one open PR of this repository whose head is the run's commit, branch and repo.

    ``pulls`` is the API's answer to ``GET /repos/{repo}/pulls?state=open&head={owner}:{branch}``; it is
    filtered again here, field by field, so a wrong or stale answer cannot pick another PR.
    """
    matches: set[int] = set()
    for pull in pulls:
        number = _get(pull, "number")
        if (
            isinstance(number, int)
            and not isinstance(number, bool)
            and number > 0
            and _get(pull, "state") == "open"
            and _get(pull, "head", "sha") == run.head_sha
            and _get(pull, "head", "ref") == run.head_branch
            and _get(pull, "head", "repo", "full_name") == run.head_repository
            and _get(pull, "base", "repo", "full_name") == run.repository
        ):
            matches.add(number)
    if not matches:
        raise CommentRefused(
            f"no open pull request of {run.repository} has head {run.head_repository}@{run.head_sha}"
        )
    if len(matches) > 1:
        raise CommentRefused(f"{len(matches)} open pull requests have head {run.head_sha}; not choosing one")
    return matches.pop()


# --- the trusted side: reading the artifacts -----------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate keys {duplicates}")
    return dict(pairs)


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if name != MEMBER:
        # Traversal (``../x``, ``/x``, ``a\\..``), folders and any second file alike.
        return f"unexpected entry {name!r} (an artifact holds {MEMBER} only)"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"{name} is a symbolic link"
    # Zips written without Unix modes carry no file type; any type given must be a regular file.
    if info.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return f"{name} is not a regular file"
    if info.flag_bits & 0x1:
        return f"{name} is encrypted"
    if info.file_size > MAX_JSON_BYTES:
        return f"{name} is {info.file_size} bytes, more than {MAX_JSON_BYTES}"
    return None


def read_artifact(path: Path) -> PreviewData:
    """Validate one artifact zip, in memory: one regular ``preview.json``, small, UTF-8 JSON, the schema."""
    where = path.name
    if path.is_symlink() or not path.is_file():
        raise CommentRefused(f"{where}: not a regular file")
    size = path.stat().st_size
    if size > MAX_ZIP_BYTES:
        raise CommentRefused(f"{where}: {size} bytes, more than {MAX_ZIP_BYTES}")
    raw = path.read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        raise CommentRefused(f"{where}: not a zip archive") from None
    with archive:
        entries = archive.infolist()
        if len(entries) != 1:
            raise CommentRefused(f"{where}: {len(entries)} entries (an artifact holds {MEMBER} only)")
        problem = _member_problem(entries[0])
        if problem:
            raise CommentRefused(f"{where}: {problem}")
        try:
            with archive.open(entries[0]) as member:
                # The header's size is the sender's word: read no more than the limit, whatever it says.
                data = member.read(MAX_JSON_BYTES + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
            raise CommentRefused(f"{where}: cannot read {MEMBER} ({type(exc).__name__})") from None
    if len(data) > MAX_JSON_BYTES:
        raise CommentRefused(f"{where}: {MEMBER} is more than {MAX_JSON_BYTES} bytes")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise CommentRefused(f"{where}: {MEMBER} is not UTF-8") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise CommentRefused(f"{where}: {MEMBER} is not valid JSON ({str(exc)[:200]})") from None
    try:
        return PreviewData.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "document"
        raise CommentRefused(
            f"{where}: {MEMBER} does not match the schema at {location}: {first['msg']}"
            + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")
        ) from None


def read_artifacts(directory: Path, run: Run, pr: int) -> list[PreviewData]:
    """Every artifact zip in ``directory``, each checked against the run; one per stack at most."""
    paths = sorted(directory.iterdir()) if directory.is_dir() else []
    if not paths:
        raise CommentRefused(f"no preview artifacts in {directory}")
    if len(paths) > MAX_ARTIFACTS:
        raise CommentRefused(f"{len(paths)} artifacts, more than the {MAX_ARTIFACTS} stacks")
    previews: dict[str, PreviewData] = {}
    for path in paths:
        data = read_artifact(path)
        if data.pr != pr:
            raise CommentRefused(f"{path.name}: claims pull request #{data.pr}, but the run belongs to #{pr}")
        if data.head_sha != run.head_sha:
            raise CommentRefused(
                f"{path.name}: claims commit {data.head_sha}, but the run built {run.head_sha}"
            )
        if data.stack in previews:
            raise CommentRefused(f"two artifacts for the stack {data.stack!r}")
        previews[data.stack] = data
    return [previews[stack] for stack in STACKS if stack in previews]


# --- the trusted side: rendering -----------------------------------------------------------------

_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _printable(text: str) -> str:
    """Control, format (zero-width, bidirectional override), unassigned and line-separator characters
    become U+FFFD; newlines and tabs become spaces."""
    out: list[str] = []
    for char in text:
        if char in "\r\n\t":
            out.append(" ")
        elif unicodedata.category(char) in _UNSAFE_CATEGORIES:
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out)


def code(text: str, limit: int = SHOW_TEXT, *, in_table: bool = False) -> str:
    """``text`` as an inline code span: literal, whatever it holds (markdown, HTML, links, @mentions).

    The fence is one backtick longer than the longest run inside; a space pads content that starts or
    ends with a backtick (CommonMark strips one from each side). In a table, ``|`` is escaped as ``\\|``,
    which GitHub's table parser honours inside code spans.
    """
    shown = _printable(text)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    if in_table:
        shown = shown.replace("|", "\\|")
    if not shown.strip():
        shown = f"«{shown}»" if shown else "«empty»"
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") or longest else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def _value_text(value: JsonValue) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _resource_line(resource: ResourceRef) -> str:
    return f"- {code(resource.type)} {code(resource.name)}"


def _policy_lines(policy: PolicyVerdict | None) -> list[str]:
    if policy is None:
        return []
    if not policy.violations:
        return [f"Policy: {policy.policies} policies, no violations.", ""]
    lines = [
        f"Policy: **{len(policy.violations)}** violation(s).",
        "",
        "| policy | level | resource | message |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {code(v.policy, in_table=True)} | {v.enforcement_level} | "
        f"{code(v.urn or 'stack', in_table=True)} | {code(v.message, 200, in_table=True)} |"
        for v in policy.violations
    ]
    return [*lines, ""]


def _changed_block(resource: ChangedResource) -> list[str]:
    verb = "replace" if resource.replace else "update"
    lines = [
        f"**{verb}** {code(resource.type)} {code(resource.name)}",
        "",
        "| property | before | after |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {code(c.path, in_table=True)} | {code(_value_text(c.old), SHOW_VALUE, in_table=True)} "
        f"| {code(_value_text(c.new), SHOW_VALUE, in_table=True)} |"
        for c in resource.changes
    ]
    return [*lines, ""]


def _caution_lines(cautions: Sequence[Caution]) -> list[str]:
    """First in the stack's section: what would lose state or go back a version."""
    if not cautions:
        return []
    lines = ["> [!CAUTION]", "> This change would lose state or go back a version:"]
    for c in cautions:
        what = f"{'protected ' if c.protected else ''}{code(c.type)} {code(c.name)}"
        if c.kind == "downgrade":
            old, new = code(_value_text(c.old)), code(_value_text(c.new))
            lines.append(f"> - **downgrade** of {what}: {code(c.path or '')} {old} → {new}")
        else:
            lines.append(f"> - **{c.kind}** of {what}")
    return [*lines, ""]


def _cost_lines(cost: CostDelta | None) -> list[str]:
    """The monthly delta first (our words and numbers formatted here; the PR's lines as code)."""
    if cost is None:
        return []
    delta = cost.after_usd - cost.before_usd
    sign = "+" if delta >= 0 else "-"
    lines = [
        f"**Estimated cost: {sign}${abs(delta):,.2f}/month** (${cost.before_usd:,.2f} → ${cost.after_usd:,.2f}, "
        "on-demand list prices; see plan.md)",
        "",
    ]
    if cost.changes:
        lines[-1:] = [*(f"- {code(change)}" for change in cost.changes), ""]
    return lines


def render_stack(data: PreviewData) -> tuple[list[str], list[list[str]]]:
    """The head (always shown) and the detail blocks (shown while they fit) of one stack."""
    head = [f"### `{data.stack}`", "", *_caution_lines(data.cautions), *_cost_lines(data.cost)]
    if data.status == "head-plan-failed":
        head += [
            f"The plan of the PR's head failed (exit {data.exit_code}); see the `preview` run's log.",
            "",
        ]
    else:
        c = data.counts
        head += [
            f"**{c.add}** to add, **{c.update}** to update, **{c.replace}** to replace, "
            f"**{c.delete}** to delete, {c.unchanged} unchanged.",
            "",
        ]
    head += _policy_lines(data.policy)
    blocks: list[list[str]] = []
    if data.added:
        blocks.append(["**add**", "", *map(_resource_line, data.added), ""])
    if data.removed:
        blocks.append(["**delete**", "", *map(_resource_line, data.removed), ""])
    blocks += [_changed_block(r) for r in data.changed]
    if data.status == "planned" and not blocks:
        head.append("No resource changes.\n")
    return head, blocks


def render_comment(previews: Sequence[PreviewData], run: Run, limit: int = COMMENT_LIMIT) -> str:
    """The sticky comment: our own words, the PR's data in code spans, folded to fit ``limit``."""
    lines = [
        MARKER,
        "## Offline plan diff",
        "",
        f"> Computed by **this pull request's own code** (commit `{run.head_sha}`) on a runner with no cloud "
        "credentials, then checked here against the schema: the numbers and names below are the PR's "
        "claim, not a verified plan. Names and values are shown literally. The real preview runs at "
        "deploy time.",
        "",
    ]
    text = "\n".join(lines)
    folded = 0
    for data in previews:
        head, blocks = render_stack(data)
        text += "\n" + "\n".join(head)
        for index, block in enumerate(blocks):
            chunk = "\n" + "\n".join(block)
            if len(text) + len(chunk) > limit:
                folded += len(blocks) - index
                break
            text += chunk
    if folded:
        text += f"\n_{folded} more section(s) folded to fit a comment; see the `preview` run's summary._\n"
    return text


# --- the whole trusted step ----------------------------------------------------------------------


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CommentRefused(f"{what} {path}: {exc}") from None


def _pull_list(document: Any) -> list[Any]:
    """The API answer as one list (``gh api --paginate --slurp`` gives a list of pages)."""
    if not isinstance(document, list):
        raise CommentRefused("the pull request list is not a JSON array")
    pulls: list[Any] = []
    for item in document:  # pyright: ignore[reportUnknownVariableType]
        if isinstance(item, list):
            pulls.extend(item)  # pyright: ignore[reportUnknownArgumentType]
        else:
            pulls.append(item)
    return pulls


def prepare(event_path: Path, pulls_path: Path, artifacts: Path) -> tuple[int, str]:
    """The PR number (from the run, never from an artifact) and the comment body."""
    run = run_from_event(_load_json(event_path, "event"))
    number = select_pull(_pull_list(_load_json(pulls_path, "pull request list")), run)
    previews = read_artifacts(artifacts, run, number)
    return number, render_comment(previews, run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.comment", description="Render the offline plan PR comment (trusted side)."
    )
    parser.add_argument("--event", type=Path, required=True, help="the workflow_run event payload")
    parser.add_argument("--pulls", type=Path, required=True, help="GET /pulls?state=open&head=… answer")
    parser.add_argument("--artifacts", type=Path, required=True, help="folder of the run's artifact zips")
    parser.add_argument("--out", type=Path, required=True, help="write the comment body here")
    parser.add_argument("--number-out", type=Path, required=True, help="write the PR number here")
    args = parser.parse_args(argv)
    try:
        number, body = prepare(args.event, args.pulls, args.artifacts)
    except CommentRefused as exc:
        print(f"refused: {_printable(str(exc))}", file=sys.stderr)
        return 1
    args.out.write_text(body, encoding="utf-8")
    args.number_out.write_text(f"{number}\n", encoding="utf-8")
    print(f"comment for pull request #{number}: {len(body)} characters")
    return 0


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: pydantic resolves the models' annotations in
    # the module they were defined in.
    from stacks.comment import main as _main

    sys.exit(_main())
