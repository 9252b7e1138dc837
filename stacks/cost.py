"""The cost estimate in plan.md and in the plan diff: tables, the monthly delta, and cost.json.

The estimate itself is ``policy.cost.estimate`` (the policy pack enforces the budget with the same
code). ``stacks plan`` writes ``cost.json`` beside ``plan.json`` (the region and usage assumptions the
stack file chose, the lines, the total); ``stacks diff`` reads both sides' ``cost.json`` and puts the
monthly delta first, naming what changed ("+$412/month: db.r6g.large → db.r6g.xlarge").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from components.cost_settings import CostSettings
from policy.cost import Estimate, PriceTable, UnpricedError, estimate, load_prices

COST_FILE = "cost.json"
MAX_RESOURCE_ROWS = 40  # plan.md lists the most expensive lines; the rest are summed in one row
MAX_DELTA_ITEMS = 8


def usd(amount: float, *, signed: bool = False) -> str:
    sign = ("+" if amount >= 0 else "-") if signed else ("-" if amount < 0 else "")
    return f"{sign}${abs(amount):,.2f}"


def plan_estimate(
    resources: Sequence[Mapping[str, Any]], region: str, usage: CostSettings
) -> tuple[Estimate, dict[str, Any]]:
    """The estimate and the cost.json document (``usage`` kept so a diff can price the other side)."""
    result = estimate(resources, region, usage)
    document = result.to_json() | {"usage": usage.model_dump(by_alias=True)}
    return result, document


def write_cost(document: Mapping[str, Any], plan_dir: Path) -> Path:
    path = plan_dir / COST_FILE
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def _sources(table: PriceTable, keys: set[str]) -> list[str]:
    rows: list[str] = []
    for key in sorted(keys):
        price = table.get(key)
        rows.append(f"| `{key}` | ${price.usd:g} / {price.unit} | {price.source}, as of {price.as_of} |")
    return rows


def render_section(result: Estimate, budget: float | None = None) -> str:
    """plan.md's "Estimated monthly cost" section (``budget``: the pack's ``monthlyBudgetUsd``)."""
    table = load_prices(result.region)
    components = "\n".join(f"| {name} | {usd(total)} |" for name, total in result.by_component().items())
    lines = sorted(result.lines, key=lambda line: -line.monthly_usd)
    shown, rest = lines[:MAX_RESOURCE_ROWS], lines[MAX_RESOURCE_ROWS:]
    resource_rows = [
        f"| {line.component} | `{line.resource}` | {line.item} | {usd(line.monthly_usd)} |"
        + (f" {line.assumption} |" if line.assumption else " |")
        for line in shown
    ]
    if rest:
        resource_rows.append(
            f"| … | {len(rest)} more line(s) | | {usd(sum(r.monthly_usd for r in rest))} | |"
        )
    used = {key for line in result.lines for key in line.prices}
    budget_line = (
        f" Budget (`monthlyBudgetUsd`, policy/PulumiPolicy.yaml): {usd(budget)}"
        + (" — **over budget**." if result.total > budget else ", within it.")
        if budget
        else ""
    )
    return "\n".join(
        [
            "## Estimated monthly cost",
            "",
            f"**{usd(result.total)}/month** in `{result.region}` (on-demand list prices, 730 h/month, price "
            f"table `{result.price_version}`, support status on {result.on}).{budget_line} Usage-based lines "
            "say which assumption of the stack file's `cost` section they use; data transfer out, backups "
            "beyond the free allowance and node disks are not included (docs/cost.md).",
            "",
            "| component | monthly |",
            "| --- | ---: |",
            components,
            "",
            "<details><summary>By resource</summary>",
            "",
            "| component | resource | item | monthly | assumption |",
            "| --- | --- | --- | ---: | --- |",
            *resource_rows,
            "",
            "</details>",
            "",
            "<details><summary>Prices used</summary>",
            "",
            "| price | figure | source |",
            "| --- | --- | --- |",
            *_sources(table, used),
            "",
            "</details>",
        ]
    )


def load_cost(plan_path: Path) -> dict[str, Any] | None:
    path = plan_path.parent / COST_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _items(document: Mapping[str, Any]) -> dict[tuple[str, int], tuple[str, float]]:
    """(resource, n-th line of it) -> (item, monthly): a rule prices a resource in the same lines in
    the same order, so the n-th line of a resource on both sides is the same thing, repriced."""
    found: dict[tuple[str, int], tuple[str, float]] = {}
    seen: dict[str, int] = {}
    lines = cast(list[Mapping[str, Any]], document.get("lines") or [])
    for line in lines:
        resource = str(line["resource"])
        index = seen.get(resource, 0)
        seen[resource] = index + 1
        found[(resource, index)] = (str(line["item"]), float(line["monthlyUsd"]))
    return found


def cost_of(
    plan: Mapping[str, Any], plan_path: Path | None, other: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One side's cost document: its cost.json, else priced with the other side's region and usage."""
    if plan_path is not None:
        document = load_cost(plan_path)
        if document is not None:
            return document
    if other is None:
        raise UnpricedError(
            "neither plan has a cost.json (plan them with this version of python -m stacks plan)"
        )
    usage = CostSettings.model_validate(other.get("usage") or {})
    return estimate(list(plan.get("resources") or []), str(other["region"]), usage).to_json() | {
        "usage": other.get("usage") or {}
    }


def delta_summary(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[float, list[str]]:
    """The monthly delta and what changed, biggest first ("`db` db.r6g.large → db.r6g.xlarge: +$376.68")."""
    old, new = _items(before), _items(after)
    changes: list[tuple[float, str]] = []
    for key in sorted(set(old) | set(new)):
        (old_item, old_usd), (new_item, new_usd) = old.get(key, ("", 0.0)), new.get(key, ("", 0.0))
        diff = new_usd - old_usd
        if abs(diff) < 0.005:
            continue
        resource = key[0]
        if not old_item:
            text = f"`{resource}` {new_item} (new)"
        elif not new_item:
            text = f"`{resource}` {old_item} (removed)"
        elif old_item != new_item:
            text = f"`{resource}` {old_item} → {new_item}"
        else:
            text = f"`{resource}` {new_item}"
        changes.append((diff, f"{text}: {usd(diff, signed=True)}"))
    changes.sort(key=lambda item: -abs(item[0]))
    total = float(after.get("monthlyUsd") or 0) - float(before.get("monthlyUsd") or 0)
    return total, [text for _, text in changes]


def render_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """The first lines of the diff: "**+$412.00/month** (… → …): `db` db.r6g.large → db.r6g.xlarge"."""
    total, changes = delta_summary(before, after)
    head = (
        f"**Estimated cost: {usd(total, signed=True)}/month** "
        f"({usd(float(before.get('monthlyUsd') or 0))} → {usd(float(after.get('monthlyUsd') or 0))}, "
        f"price table `{after.get('priceTable')}`, {after.get('region')})"
    )
    if not changes:
        return head + ": no priced change."
    shown = changes[:MAX_DELTA_ITEMS]
    more = f"\n- … and {len(changes) - len(shown)} more" if len(changes) > len(shown) else ""
    return head + ":\n" + "\n".join(f"- {text}" for text in shown) + more


def plan_cost(
    resources: Sequence[Mapping[str, Any]],
    region: str,
    usage: CostSettings,
    plan_dir: Path,
    budget: float | None = None,
) -> tuple[Estimate, str]:
    """``stacks plan``: write cost.json and return plan.md's section (UnpricedError if a type has no price)."""
    result, document = plan_estimate(resources, region, usage)
    write_cost(document, plan_dir)
    return result, render_section(result, budget)


def diff_cost(
    old_path: Path, new_path: Path, before: Mapping[str, Any], after: Mapping[str, Any]
) -> str | None:
    """``stacks diff``: the delta lines for the top of the comment, or None when neither side is priced."""
    try:
        new_cost = cost_of(after, new_path, load_cost(old_path))
        old_cost = cost_of(before, old_path, new_cost)
    except UnpricedError as exc:
        return f"_Estimated cost: not available ({exc})._"
    return render_delta(old_cost, new_cost)


def diff_cost_data(
    old_path: Path, new_path: Path, before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[float, float, list[str]] | None:
    """``stacks preview-data``: (before, after, what changed) for the PR comment's data, or None."""
    try:
        new_cost = cost_of(after, new_path, load_cost(old_path))
        old_cost = cost_of(before, old_path, new_cost)
    except UnpricedError:
        return None
    _, changes = delta_summary(old_cost, new_cost)
    plain = [change.replace("`", "") for change in changes[:MAX_DELTA_ITEMS]]
    return float(old_cost.get("monthlyUsd") or 0), float(new_cost.get("monthlyUsd") or 0), plain
