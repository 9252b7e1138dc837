"""Drift detection with the Pulumi Automation API, read-only.

Two passes, neither of which writes state:

1. ``refresh --preview-only``: what changed in the cloud outside Pulumi (a security group rule added by
   hand, a deleted log group) — the resources whose real state no longer matches the stack's state.
2. ``preview --refresh --expect-no-changes``: whether ``pulumi up`` would change anything once it has
   looked at the real state — the program and the world disagree.

Either finding is drift. The report lists every resource with its operation and the properties that
differ, and is written as JSON for the scheduled workflow to post.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.config import REPO_ROOT

# Operations that leave a resource as it is.
UNCHANGED = {"same", "read", "refresh"}
# The CLI's error when --expect-no-changes saw changes (pkg/backend/backenderr NoChangesExpectedError;
# exit code 7 since CLI 3.227.0, 255 before): the only failure of the preview that means drift.
NO_CHANGES_EXPECTED = "no changes were expected"
# The engine's colour directives (`<{%fg 1%}>`), left in diagnostics sent with the default --color.
COLOUR_DIRECTIVE = re.compile(r"<\{%[^%]*%\}>")
NO_CREDENTIALS = "no cloud credentials: configure AWS credentials (OIDC role in CI)"
# What the CLI says when it cannot run at all, mapped to a one-line reason.
CANNOT_RUN_HINTS = [
    ("no stack named", "stack {stack!r} does not exist in the current backend (pulumi stack ls)"),
    ("no credentials", NO_CREDENTIALS),
    ("could not find default credentials", NO_CREDENTIALS),
    ("no valid credential sources", NO_CREDENTIALS),
    # The stacks live in the account's S3 backend, never in Pulumi Cloud: this message means no backend
    # was selected and the CLI fell back to Pulumi Cloud, not that a Pulumi access token is missing.
    (
        "pulumi_access_token",
        "no state backend selected: set PULUMI_BACKEND_URL to the bootstrap's backendUrl (s3://...) "
        "or run pulumi login with it",
    ),
    (
        "pulumi login",
        "not logged in to the state backend: set PULUMI_BACKEND_URL to the bootstrap's backendUrl "
        "(s3://...) or run pulumi login with it",
    ),
]


class CannotRun(Exception):
    """Drift detection could not run (no CLI, no credentials, no stack): exit 2 with this one line."""


@dataclass(frozen=True)
class DriftedResource:
    phase: str  # "refresh": changed outside Pulumi; "preview": pulumi up would change it
    urn: str
    type: str
    op: str
    properties: list[str]


@dataclass
class DriftReport:
    stack: str
    resources: list[DriftedResource] = field(default_factory=list[DriftedResource])
    summaries: dict[str, dict[str, int]] = field(default_factory=dict[str, dict[str, int]])

    @property
    def drifted(self) -> bool:
        return bool(self.resources)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "drifted": self.drifted,
            "resources": [asdict(r) for r in self.resources],
            "summaries": self.summaries,
        }


def _changed_properties(metadata: Any) -> list[str]:
    detailed: dict[str, Any] = dict(getattr(metadata, "detailed_diff", None) or {})
    diffs: list[str] = list(getattr(metadata, "diffs", None) or [])
    return sorted(set(diffs) | set(detailed))


def _step(event: Any, phase: str) -> Any:
    """The event of `event` that says what happens to a resource in this pass, if any.

    A refresh reports each resource first with op "refresh" and no diff; its result (same, update with
    the properties, delete) arrives only in the resource's outputs event. The preview's planned steps
    are its logical pre-events (a replacement's create and delete halves are not logical; the refresh
    steps inside `preview --refresh` keep op "refresh").
    """
    if phase == "refresh":
        outputs = getattr(event, "res_outputs_event", None)
        return None if outputs is None else outputs.metadata
    pre = getattr(event, "resource_pre_event", None)
    if pre is None or pre.metadata is None or not pre.metadata.logical:
        return None
    return pre.metadata


def _collector(report: DriftReport, phase: str, errors: list[str]) -> Callable[[Any], None]:
    def on_event(event: Any) -> None:
        diagnostic = getattr(event, "diagnostic_event", None)
        if diagnostic is not None and diagnostic.severity == "error":
            errors.append(COLOUR_DIRECTIVE.sub("", diagnostic.message).strip())
            return
        metadata = _step(event, phase)
        if metadata is None:
            return
        op = str(getattr(metadata.op, "value", metadata.op))
        if op in UNCHANGED or metadata.type == "pulumi:pulumi:Stack":
            return
        report.resources.append(
            DriftedResource(phase, metadata.urn, metadata.type, op, _changed_properties(metadata))
        )

    return on_event


def _cannot_run_reason(stack: str, message: str, errors: list[str] | None = None) -> str:
    """One line: a known cause from the engine's error diagnostics or the CLI's output, else the first
    error diagnostic, else the output's last line."""
    lowered = "\n".join([*(errors or []), message]).lower()
    for needle, reason in CANNOT_RUN_HINTS:
        if needle in lowered:
            return reason.format(stack=stack)
    lines = [line.strip() for line in (errors or [message])[0].splitlines() if line.strip()] or [
        "unknown error"
    ]
    # An error diagnostic starts with its cause, except a program's traceback, which ends with it; the
    # CLI's own output ends with its error.
    last = lines[0] if errors and not lines[0].startswith("Program failed") else lines[-1]
    return f"pulumi failed: {last}"


def _summary(result: Any) -> dict[str, int]:
    changes: dict[str, int] = dict(getattr(result, "change_summary", None) or {})
    return {str(op): int(count) for op, count in changes.items()}


def detect(stack: str, work_dir: Path = REPO_ROOT) -> DriftReport:
    """Run both read-only passes; raises CannotRun with a one-line reason when Pulumi cannot run."""
    if shutil.which("pulumi") is None:
        # select_stack would fail with a bare FileNotFoundError from its version probe.
        raise CannotRun("no Pulumi CLI on PATH: install it (https://www.pulumi.com/docs/install/)")
    from pulumi import automation as auto

    try:
        workspace_stack = auto.select_stack(stack_name=stack, work_dir=str(work_dir))
    except auto.errors.CommandError as exc:
        raise CannotRun(_cannot_run_reason(stack, str(exc))) from None
    except auto.errors.InvalidVersionError as exc:  # the SDK's check of `pulumi version`
        raise CannotRun(f"this Pulumi CLI does not suit the Automation API: {exc}") from None

    report = DriftReport(stack)
    errors: list[str] = []
    try:
        refreshed = workspace_stack.preview_refresh(on_event=_collector(report, "refresh", errors))
        report.summaries["refresh"] = _summary(refreshed)
    except auto.errors.CommandError as exc:
        raise CannotRun(_cannot_run_reason(stack, str(exc), errors)) from None
    except RuntimeError:  # the SDK's "summary event never found": the CLI sent no engine events
        raise CannotRun("the Pulumi CLI sent no engine events for the refresh") from None

    found_before = len(report.resources)
    try:
        previewed = workspace_stack.preview(
            refresh=True,
            expect_no_changes=True,
            diff=True,
            on_event=_collector(report, "preview", errors),
        )
        report.summaries["preview"] = _summary(previewed)
    except auto.errors.CommandError as exc:
        # --expect-no-changes fails the command when there are changes; that alone is drift. A preview
        # that failed for any other reason (an error diagnostic, another message) proves nothing,
        # even if it had planned changes before it failed.
        drift = NO_CHANGES_EXPECTED in str(exc) and len(report.resources) > found_before
        if not drift:
            raise CannotRun(_cannot_run_reason(stack, str(exc), errors)) from None
    except RuntimeError:
        raise CannotRun("the Pulumi CLI sent no engine events for the preview") from None
    return report


def write_report(report: DriftReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def render_markdown(report: DriftReport) -> str:
    """The issue body the drift workflow posts."""
    if not report.drifted:
        return f"No drift in `{report.stack}`."
    lines = [
        f"## Drift in `{report.stack}`",
        "",
        f"{len(report.resources)} resource change(s). `refresh` = changed outside Pulumi; "
        "`preview` = `pulumi up` would change it.",
        "",
        "| pass | operation | type | resource | properties |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in report.resources:
        name = r.urn.rsplit("::", 1)[-1]
        lines.append(f"| {r.phase} | {r.op} | `{r.type}` | `{name}` | {', '.join(r.properties) or '—'} |")
    lines += ["", 'See docs/runbook.md, "Handle drift".']
    return "\n".join(lines) + "\n"
