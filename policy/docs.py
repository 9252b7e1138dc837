"""The generated part of docs/policy.md: every policy with its severity, controls, checks and fix.

``python -m policy docs`` rewrites the text between the two markers; ``python -m policy docs --check``
(and a test) fails when the file is stale, so a policy added to the pack appears in the docs with its
severity and controls or the build fails.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from policy.core import FRAMEWORKS, SEVERITIES, PolicyMetadata, metadata
from policy.pack import MODULES

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "policy.md"
BEGIN = "<!-- BEGIN GENERATED: python -m policy docs -->"
END = "<!-- END GENERATED -->"

#: Where a policy's default scope is narrower than "mandatory on every stack" (the check decides).
SCOPE: dict[str, str] = {
    "rds-multi-az": "production; elsewhere only with `rdsRequireMultiAz`",
    "rds-deletion-protection": "production stacks only",
    "rds-final-snapshot": "production stacks only",
    "elasticache-broker-no-eviction": "while `elasticacheIsBroker`",
    "monitoring-installed-in-production": "production stacks only",
    "data-store-alarms-in-production": "production stacks only",
    "production-stateful-protected": "production stacks only",
    "stack-monthly-budget": "stacks with `monthlyBudgetUsd`",
}


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text[:1].upper() + text[1:]


def _checks(meta: PolicyMetadata) -> str:
    return ", ".join(f"`{t}`" for t in meta.types) if meta.types else "whole stack"


def _row(service: str, name: str, meta: PolicyMetadata) -> str:
    controls = ", ".join(meta.controls) or "—"
    scope = SCOPE.get(name, "every stack")
    cells = [
        service,
        f"`{name}`",
        meta.severity,
        controls,
        scope,
        _checks(meta),
        _cell(meta.why),
        _cell(meta.fix),
    ]
    return "| " + " | ".join(cells) + " |"


def render_section() -> str:
    """The generated block, markers included."""
    rows: list[str] = []
    counts: Counter[str] = Counter()
    for service, policies in MODULES.items():
        for policy in policies:
            meta = metadata(policy.name)
            counts[meta.severity] += 1
            rows.append(_row(service, policy.name, meta))
    summary = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES)
    frameworks = "\n".join(f"- `{key}`: {title}" for key, title in FRAMEWORKS.items())
    return "\n".join(
        [
            BEGIN,
            f"{len(rows)} policies: {summary}.",
            "",
            "Control ids name the framework as below; a policy lists a control only where it implements (part",
            "of) that control's requirement for the resources it checks, and none where no mapping is honest.",
            "",
            frameworks,
            "",
            "| Service | Policy | Severity | Controls | Scope | Checks | Why it is insecure | How to fix |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            END,
        ]
    )


def render(current: str) -> str:
    """``current`` with its generated block replaced (ValueError if the markers are missing)."""
    start, end = current.find(BEGIN), current.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC_PATH.name}: the markers {BEGIN!r} and {END!r} are missing")
    return current[:start] + render_section() + current[end + len(END) :]
