"""plan.md: the plan summarised for a terminal or a PR comment."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

Resource = Mapping[str, Any]


def counts_by_type(resources: Iterable[Resource]) -> list[tuple[str, int]]:
    counter = Counter(str(r["type"]) for r in resources)
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def _node_id(urn: str) -> str:
    # From the whole URN: components of different types share names (``ai-agents-staging``).
    return "n" + hashlib.sha256(urn.encode()).hexdigest()[:12]


def component_graph(resources: Iterable[Resource]) -> str:
    """A Mermaid graph of the component resources (ours and remote ones such as eks:index:Cluster)."""
    components = [r for r in resources if not r.get("custom", True)]
    known = {str(r["urn"]) for r in components}
    lines = ["```mermaid", "graph LR"]
    for resource in components:
        lines.append(
            f'  {_node_id(str(resource["urn"]))}["{resource["name"]}<br/><small>{resource["type"]}</small>"]'
        )
    for resource in components:
        parent = resource.get("parent")
        if parent in known:
            lines.append(f"  {_node_id(str(parent))} --> {_node_id(str(resource['urn']))}")
    lines.append("```")
    return "\n".join(lines)


def policy_summary(verdict: Mapping[str, Any]) -> str:
    violations: list[Mapping[str, Any]] = list(verdict.get("violations") or [])
    if verdict.get("policyPack") is None:
        return "Policy pack: not installed in this checkout."
    header = f"Policy pack `{verdict['policyPack']}`: {verdict.get('policies', 0)} policies, "
    if not violations:
        return header + "no violations. ✅"
    rows = ["| policy | level | resource | message |", "| --- | --- | --- | --- |"]
    for v in violations:
        message = str(v.get("message", "")).replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| {v.get('policy')} | {v.get('enforcementLevel')} | `{v.get('urn') or 'stack'}` | {message} |"
        )
    return header + f"**{len(violations)} violation(s)**. ❌\n\n" + "\n".join(rows)


def render_plan_markdown(
    plan: Mapping[str, Any], verdict: Mapping[str, Any], manifest_count: int, cost: str | None = None
) -> str:
    """plan.md; ``cost`` is the "Estimated monthly cost" section (stacks/cost.py), after the policy."""
    resources: list[Resource] = list(plan["resources"])
    type_rows = "\n".join(f"| `{kind}` | {count} |" for kind, count in counts_by_type(resources))
    return "\n".join(
        [
            f"# Offline plan: `{plan['project']}` / `{plan['stack']}`",
            "",
            f"{len(resources)} resources, {manifest_count} Kubernetes manifests. Produced by the real program "
            "under Pulumi's unit-test mocks (see docs/offline-plan.md for what this does and does not prove).",
            "",
            "## Components",
            "",
            component_graph(resources),
            "",
            "## Resources by type",
            "",
            "| type | count |",
            "| --- | ---: |",
            type_rows,
            "",
            "## Policy",
            "",
            policy_summary(verdict),
            "",
            *([cost, ""] if cost else []),
        ]
    )
