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
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.config import REPO_ROOT

# Operations that leave a resource as it is.
UNCHANGED = {"same", "read", "refresh"}
# What the CLI says when it cannot run at all, mapped to a one-line reason.
CANNOT_RUN_HINTS = [
    ("no stack named", "stack {stack!r} does not exist in the current backend (pulumi stack ls)"),
    ("not found", "stack {stack!r} does not exist in the current backend (pulumi stack ls)"),
    ("no credentials", "no cloud credentials: configure AWS credentials (OIDC role in CI)"),
    (
        "could not find default credentials",
        "no cloud credentials: configure AWS credentials (OIDC role in CI)",
    ),
    ("no valid credential sources", "no cloud credentials: configure AWS credentials (OIDC role in CI)"),
    ("pulumi login", "not logged in to a Pulumi backend: run pulumi login"),
    ("pulumi_access_token", "not logged in to a Pulumi backend: set PULUMI_ACCESS_TOKEN or run pulumi login"),
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


def _collector(report: DriftReport, phase: str) -> Callable[[Any], None]:
    def on_event(event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None or pre.metadata is None:
            return
        metadata = pre.metadata
        op = str(getattr(metadata.op, "value", metadata.op))
        if op in UNCHANGED or metadata.type == "pulumi:pulumi:Stack":
            return
        report.resources.append(
            DriftedResource(phase, metadata.urn, metadata.type, op, _changed_properties(metadata))
        )

    return on_event


def _cannot_run_reason(stack: str, message: str) -> str:
    lowered = message.lower()
    for needle, reason in CANNOT_RUN_HINTS:
        if needle in lowered:
            return reason.format(stack=stack)
    last = next((line.strip() for line in reversed(message.splitlines()) if line.strip()), "unknown error")
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

    report = DriftReport(stack)
    try:
        refreshed = workspace_stack.preview_refresh(on_event=_collector(report, "refresh"))
        report.summaries["refresh"] = _summary(refreshed)
    except auto.errors.CommandError as exc:
        raise CannotRun(_cannot_run_reason(stack, str(exc))) from None

    found_before = len(report.resources)
    try:
        previewed = workspace_stack.preview(
            refresh=True, expect_no_changes=True, diff=True, on_event=_collector(report, "preview")
        )
        report.summaries["preview"] = _summary(previewed)
    except auto.errors.CommandError as exc:
        # --expect-no-changes fails the command when there are changes; that is drift, not an error.
        if len(report.resources) == found_before:
            raise CannotRun(_cannot_run_reason(stack, str(exc))) from None
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
