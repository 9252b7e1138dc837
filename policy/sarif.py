"""The policy report as SARIF 2.1.0 (for GitHub code scanning) and as located JSON.

One rule per policy of the pack (so a rule's help is there even when it has no finding), one result
per violation, located by :mod:`policy.locate`. GitHub reads ``properties.security-severity`` of a
rule (a CVSS-like number) to rank security alerts; the SARIF ``level`` follows the severity.
"""

from __future__ import annotations

from typing import Any

from policy.checker import PolicyReport, Violation
from policy.core import FRAMEWORKS, PolicyMetadata, Severity, metadata
from policy.locate import Location, locate
from policy.pack import PACK_NAME, POLICIES

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

# GitHub: over 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
SECURITY_SEVERITY: dict[Severity, str] = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}
LEVEL: dict[Severity, str] = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


def violation_location(report: PolicyReport, violation: Violation) -> Location:
    return locate(report.stack, violation.urn, metadata(violation.policy).stack_key)


def located_json(report: PolicyReport) -> dict[str, Any]:
    """``PolicyReport.to_json()`` with a ``location`` ({file, line}) on every violation."""
    document = report.to_json()
    for item, violation in zip(document["violations"], report.violations, strict=True):
        item["location"] = violation_location(report, violation).to_json()
    return document


def _rule(name: str, meta: PolicyMetadata) -> dict[str, Any]:
    frameworks = sorted({c.split(" ", 1)[0] for c in meta.controls})
    return {
        "id": name,
        "name": name,
        "shortDescription": {"text": meta.why},
        "fullDescription": {"text": f"{meta.why} Fix: {meta.fix}"},
        "help": {
            "text": f"Fix: {meta.fix}\nSeverity: {meta.severity}. See docs/policy.md. Controls: {', '.join(meta.controls) or 'none'}.",
            "markdown": f"**Fix:** {meta.fix}\n\nSeverity: **{meta.severity}**. "
            f"Controls: {', '.join(f'`{c}`' for c in meta.controls) or 'none mapped'} "
            f"({'; '.join(f'{f}: {FRAMEWORKS[f]}' for f in frameworks) or 'no framework'}).",
        },
        "defaultConfiguration": {"level": LEVEL[meta.severity]},
        "properties": {
            "tags": ["security", "iac", *meta.controls],
            "security-severity": SECURITY_SEVERITY[meta.severity],
            "severity": meta.severity,
        },
    }


def _result(report: PolicyReport, violation: Violation, index: int) -> dict[str, Any]:
    meta = metadata(violation.policy)
    where = violation_location(report, violation)
    return {
        "ruleId": violation.policy,
        "ruleIndex": index,
        "level": LEVEL[meta.severity],
        "message": {"text": f"[{meta.severity}] {violation.message}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": where.path, "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": where.line},
                },
                **(
                    {"logicalLocations": [{"fullyQualifiedName": violation.urn, "kind": "resource"}]}
                    if violation.urn
                    else {}
                ),
            }
        ],
        # One alert per (policy, resource): code scanning tracks it across commits by this.
        "partialFingerprints": {"policyResource/v1": f"{violation.policy}:{violation.urn or 'stack'}"},
        "properties": {
            "enforcementLevel": violation.enforcement_level,
            "severity": meta.severity,
            "controls": list(meta.controls),
            "stack": report.stack,
        },
    }


def to_sarif(report: PolicyReport) -> dict[str, Any]:
    names = [p.name for p in POLICIES]
    index = {name: i for i, name in enumerate(names)}
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": PACK_NAME,
                        "rules": [_rule(name, metadata(name)) for name in names],
                    }
                },
                "automationDetails": {"id": f"policy/{report.stack or 'plan'}/"},
                "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the repository root"}}},
                "results": [_result(report, v, index[v.policy]) for v in report.violations],
            }
        ],
    }
