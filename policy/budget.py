"""The stack's estimated monthly cost against the pack's per-stack ``monthlyBudgetUsd`` knob.

The estimate is :func:`policy.cost.estimate` over the whole plan, with the region and usage
assumptions (``cost`` section) of ``Pulumi.<stack>.yaml``, read here: the engine hands a policy
resources, not the stack's config. No budget set: nothing to check. A resource the table cannot price
is left out and named (``stacks plan`` itself fails on it). Severity medium, so staging reports it as
advisory (``severityLevels``) and production blocks on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError

from components.cost_settings import CostSettings
from policy.core import StackResource, as_dict, stack_policy
from policy.cost import UnpricedError, estimate
from policy.settings import PACK_DIR, PolicySettings

PROJECT = "ai-agents-platform"


@cache
def stack_cost_inputs(stack: str, root: Path = PACK_DIR.parent) -> tuple[str, CostSettings] | None:
    """(region, cost settings) from ``Pulumi.<stack>.yaml``; None without a stack file or region."""
    path = root / f"Pulumi.{stack}.yaml"
    if not stack or not path.is_file():
        return None
    document: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    config = cast(Mapping[str, Any], document.get("config") or {})
    region = as_dict(config.get(f"{PROJECT}:aws")).get("region")
    if not region:
        return None
    try:
        usage = CostSettings.model_validate(as_dict(config.get(f"{PROJECT}:cost")))
    except ValidationError:
        return None  # the stack's own config validation names the key; the plan never gets here
    return str(region), usage


def check_budget(
    resources: Sequence[StackResource], budget: float, region: str, usage: CostSettings
) -> Iterator[tuple[str, str | None]]:
    """One finding when the estimate is over the budget: by how much, the component that costs most
    (where a reviewer looks first) and the resources the table could not price (left out)."""
    plan = [
        {"urn": r.urn, "type": r.type, "name": r.name, "props": r.props, "parent": r.parent}
        for r in resources
    ]
    try:
        result = estimate(plan, region, usage, strict=False)
    except UnpricedError as exc:  # the region is not in the table at all
        yield f"The stack's monthly cost cannot be estimated against its budget: {exc}.", None
        return
    if result.total <= budget:
        return
    # Over a positive budget, so at least one priced line, hence one component.
    component, component_usd = next(iter(result.by_component().items()))
    left_out = f" Not priced, so left out: {', '.join(result.unpriced)}." if result.unpriced else ""
    yield (
        f"Estimated monthly cost ${result.total:,.2f} exceeds monthlyBudgetUsd ${budget:,.2f} "
        f"by ${result.total - budget:,.2f}; the largest part is {component} (${component_usd:,.2f}).{left_out}",
        None,
    )


def _within_budget(
    resources: Sequence[StackResource], settings: PolicySettings
) -> Iterator[tuple[str, str | None]]:
    inputs = stack_cost_inputs(settings.stack)
    if settings.monthly_budget_usd is not None and inputs is not None:
        yield from check_budget(resources, settings.monthly_budget_usd, *inputs)


POLICIES = [
    stack_policy(
        "stack-monthly-budget",
        severity="medium",
        controls=(),
        stack_key="policy:monthlyBudgetUsd",
        description="A change that takes the stack over its monthly budget should be a decision, not a surprise on the bill.",
        remediation="size the change down (instance class, node count, NAT gateways), or raise monthlyBudgetUsd for the stack in policy/PulumiPolicy.yaml with the reviewers' agreement (plan.md lists the cost by resource).",
        check=_within_budget,
    ),
]
