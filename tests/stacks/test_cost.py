"""The cost estimate: a small stack priced by hand from the table, deltas, unpriced types, the price
refresh's parsing of an offer file, sizes within a PR comment, and the budget policy's levels."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from components.cost_settings import CostSettings
from policy.budget import check_budget
from policy.core import StackResource
from policy.cost import PRICES_PATH, UnpricedError, estimate, load_prices
from policy.pack import initial_config
from policy.settings import load_settings
from stacks.comment import COMMENT_LIMIT
from stacks.cost import delta_summary, plan_estimate, render_delta, render_section
from stacks.cost_refresh import matcher, refresh
from stacks.diff import diff_plans, render

REGION = "eu-west-1"
NLB = {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
DAY = date(2026, 12, 2)
STACK = "urn:pulumi:staging::ai-agents-platform::"
TABLE = json.loads(PRICES_PATH.read_text(encoding="utf-8"))
RAW = TABLE["regions"][REGION]["prices"]


def price(key: str) -> float:
    return float(RAW[key]["usd"])


def res(type_: str, name: str, parent: str | None = None, **props: Any) -> dict[str, Any]:
    return {"urn": f"{STACK}{type_}::{name}", "type": type_, "name": name, "parent": parent, "props": props}


def small_stack(
    *, db_class: str = "db.t4g.medium", nodes: int = 2, multi_az: bool = False
) -> list[dict[str, Any]]:
    db_component = f"{STACK}ai-agents:database:Database::db"
    return [
        {
            "urn": db_component,
            "type": "ai-agents:database:Database",
            "name": "db",
            "parent": None,
            "props": {},
        },
        res("eks:index:Cluster", "eks", version="1.35"),
        res(
            "eks:index:ManagedNodeGroup",
            "general",
            instanceTypes=["m6i.large", "m6a.large"],
            capacityType="ON_DEMAND",
            scalingConfig={"minSize": 1, "desiredSize": nodes, "maxSize": 5},
        ),
        res(
            "aws:rds/instance:Instance",
            "postgres",
            db_component,
            engine="postgres",
            instanceClass=db_class,
            multiAz=multi_az,
            allocatedStorage=20,
            storageType="gp3",
            performanceInsightsEnabled=True,
            performanceInsightsRetentionPeriod=7,
        ),
        res("aws:ec2/natGateway:NatGateway", "nat"),
        res("aws:ec2/eip:Eip", "nat-ip", domain="vpc"),
        res("aws:kms/key:Key", "key"),
        res("aws:secretsmanager/secret:Secret", "secret"),
        res("aws:iam/role:Role", "role"),  # free: no line
    ]


def test_a_small_stack_costs_what_the_table_says_by_hand() -> None:
    usage = CostSettings(nat_processed_gb_per_month=200)
    hours = TABLE["hoursPerMonth"]
    by_hand = (
        price("eks.cluster.standard") * hours  # 1.35: standard support until 2027-03-27
        + 2 * price("ec2.m6i.large") * hours  # on-demand node groups launch the first listed type
        + price("rds.postgres.db.t4g.medium.single-az") * hours
        + 20 * price("rds.storage.gp3.single-az")
        + price("natgateway.hour") * hours
        + 200 * price("natgateway.gb")
        + price("ipv4.public.hour") * hours
        + price("kms.key")
        + price("secretsmanager.secret")
    )
    result = estimate(small_stack(), REGION, usage, on=DAY)
    assert result.total == pytest.approx(by_hand)
    assert result.by_component()["Database"] == pytest.approx(
        price("rds.postgres.db.t4g.medium.single-az") * hours + 20 * price("rds.storage.gp3.single-az")
    )
    nat_gb = next(line for line in result.lines if line.prices == ("natgateway.gb",))
    assert nat_gb.assumption and "natProcessedGbPerMonth=200" in nat_gb.assumption


def test_extended_support_is_priced_after_the_end_of_standard_support() -> None:
    plan = [res("eks:index:Cluster", "eks", version="1.33")]
    before = estimate(plan, REGION, on=date(2026, 7, 29)).total
    after = estimate(plan, REGION, on=date(2026, 7, 30)).total
    hours = TABLE["hoursPerMonth"]
    assert (before, after) == pytest.approx(
        (price("eks.cluster.standard") * hours, price("eks.cluster.extended") * hours)
    )


def test_instance_class_and_node_count_changes_give_the_expected_delta() -> None:
    hours = TABLE["hoursPerMonth"]
    base = estimate(small_stack(db_class="db.r6g.large", multi_az=True), REGION, on=DAY).to_json()
    bigger_db = estimate(small_stack(db_class="db.r6g.xlarge", multi_az=True), REGION, on=DAY).to_json()
    total, changes = delta_summary(base, bigger_db)
    expected = (
        price("rds.postgres.db.r6g.xlarge.multi-az") - price("rds.postgres.db.r6g.large.multi-az")
    ) * hours
    assert total == pytest.approx(expected, abs=0.01)
    assert changes == [f"`postgres` db.r6g.large Multi-AZ → db.r6g.xlarge Multi-AZ: +${expected:,.2f}"]

    more_nodes = estimate(
        small_stack(db_class="db.r6g.large", multi_az=True, nodes=5), REGION, on=DAY
    ).to_json()
    total, changes = delta_summary(base, more_nodes)
    assert total == pytest.approx(3 * price("ec2.m6i.large") * hours, abs=0.01)
    assert changes[0].startswith("`general` 2 x m6i.large (desired size) → 5 x m6i.large (desired size): +$")
    assert render_delta(base, more_nodes).startswith(f"**Estimated cost: +${total:,.2f}/month**")


@pytest.mark.parametrize(
    "plan",
    [
        small_stack(db_class="db.x9.enormous"),
        [res("aws:lb/loadBalancer:LoadBalancer", "alb", loadBalancerType="application")],
        [
            res(
                "eks:index:ManagedNodeGroup",
                "gpu",
                instanceTypes=["p5.48xlarge"],
                scalingConfig={"desiredSize": 1},
            )
        ],
    ],
    ids=["unknown-db-class", "billable-type-without-rule", "unknown-instance-type"],
)
def test_an_unpriced_type_is_an_error_not_a_zero(plan: list[dict[str, Any]]) -> None:
    with pytest.raises(UnpricedError):
        estimate(plan, REGION, on=DAY)
    assert estimate(plan, REGION, on=DAY, strict=False).unpriced  # the budget policy's lenient mode names it


def test_an_unknown_region_is_an_error() -> None:
    with pytest.raises(UnpricedError, match="no region"):
        load_prices("ap-south-2")


def test_every_figure_has_a_source_and_a_date() -> None:
    table = load_prices(REGION)
    assert table.prices
    for item in table.prices.values():
        assert item.source.startswith(("https://aws.amazon.com/", "AWS Price List")), item.key
        assert date.fromisoformat(item.as_of) <= date.today()
        assert item.usd >= 0


# A recorded excerpt in the shape of the bulk API's offer file (AmazonRDS, eu-west-1): one product
# that matches, one of another engine and one of another region that must not.
OFFER: dict[str, Any] = {
    "formatVersion": "v1.0",
    "offerCode": "AmazonRDS",
    "version": "20261120180000",
    "publicationDate": "2026-11-20T18:00:00Z",
    "products": {
        "SKUPG": {
            "sku": "SKUPG",
            "productFamily": "Database Instance",
            "attributes": {
                "servicecode": "AmazonRDS",
                "location": "EU (Ireland)",
                "regionCode": "eu-west-1",
                "instanceType": "db.r6g.large",
                "databaseEngine": "PostgreSQL",
                "deploymentOption": "Multi-AZ",
            },
        },
        "SKUMY": {
            "sku": "SKUMY",
            "productFamily": "Database Instance",
            "attributes": {
                "regionCode": "eu-west-1",
                "instanceType": "db.r6g.large",
                "databaseEngine": "MySQL",
                "deploymentOption": "Multi-AZ",
            },
        },
        "SKUUS": {
            "sku": "SKUUS",
            "productFamily": "Database Instance",
            "attributes": {
                "regionCode": "us-east-1",
                "instanceType": "db.r6g.large",
                "databaseEngine": "PostgreSQL",
                "deploymentOption": "Multi-AZ",
            },
        },
    },
    "terms": {
        "OnDemand": {
            sku: {
                f"{sku}.JRTCKXETXF": {
                    "offerTermCode": "JRTCKXETXF",
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "priceDimensions": {
                        f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                            "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                            "description": "RDS db.r6g.large Multi-AZ instance hour",
                            "unit": "Hrs",
                            "pricePerUnit": {"USD": usd},
                        }
                    },
                }
            }
            for sku, usd in (("SKUPG", "0.5230000000"), ("SKUMY", "0.4840000000"), ("SKUUS", "0.4500000000"))
        }
    },
}


def test_refresh_takes_matching_on_demand_prices_from_an_offer_file() -> None:
    keys = ("rds.postgres.db.r6g.large.multi-az", "ec2.m6i.large", "kms.key")
    table = {"version": "2026-12-01.1", "regions": {REGION: {"prices": {k: dict(RAW[k]) for k in keys}}}}
    new, report = refresh(table, REGION, {"AmazonRDS": OFFER}, DAY)
    item = new["regions"][REGION]["prices"]["rds.postgres.db.r6g.large.multi-az"]
    assert item["usd"] == pytest.approx(0.523) and item["kind"] == "priceList"
    assert item["asOf"] == "2026-11-20" and "20261120180000" in item["source"]
    assert report == [
        f"rds.postgres.db.r6g.large.multi-az: {price('rds.postgres.db.r6g.large.multi-az'):g} -> 0.523 USD/hour"
    ]
    # Offers not given are left alone; the version says when the table was refreshed.
    assert new["regions"][REGION]["prices"]["ec2.m6i.large"] == RAW["ec2.m6i.large"]
    assert new["version"] == "2026-12-02.1"


def test_refresh_refuses_a_table_figure_the_offer_file_does_not_have() -> None:
    table = {
        "version": "v",
        "regions": {REGION: {"prices": {"rds.postgres.db.r6g.large.single-az": {"usd": 1, "unit": "hour"}}}},
    }
    with pytest.raises(ValueError, match="0 on-demand prices"):
        refresh(table, REGION, {"AmazonRDS": OFFER}, DAY)


def test_every_table_key_of_a_refreshed_service_has_a_matcher() -> None:
    for key in RAW:
        if key.startswith(("ec2.", "rds.postgres.", "rds.storage.", "elasticache.")):
            assert matcher(key) is not None, key


def _big_plan() -> list[dict[str, Any]]:
    plan = small_stack()
    plan += [res("aws:kms/key:Key", f"key-{i}") for i in range(150)]  # many lines: the table folds
    return plan


def test_plan_md_section_and_pr_comment_stay_within_the_comment_limit() -> None:
    usage = CostSettings()
    result, document = plan_estimate(_big_plan(), REGION, usage)
    section = render_section(result, 2000.0)
    assert "## Estimated monthly cost" in section and "more line(s)" in section
    assert len(section) < COMMENT_LIMIT // 4
    before = {"project": "p", "stack": "staging", "resources": small_stack()}
    after = {"project": "p", "stack": "staging", "resources": _big_plan()}
    old = estimate(before["resources"], REGION).to_json()
    comment = render(diff_plans(before, after), None, COMMENT_LIMIT, render_delta(old, document))
    assert len(comment) <= COMMENT_LIMIT + 200  # the diff folds its details past the limit
    assert comment.splitlines()[2].startswith("**Estimated cost: +$150.00/month**")


def _stack(plan: list[dict[str, Any]]) -> list[StackResource]:
    return [StackResource(r["type"], r["name"], r["urn"], r["props"], r.get("parent"), ()) for r in plan]


def test_budget_policy_reports_over_budget_advisory_on_staging_mandatory_on_production() -> None:
    plan = _stack(small_stack())
    total = estimate(small_stack(), REGION).total
    assert list(check_budget(plan, total + 1, REGION, CostSettings())) == []
    largest, largest_usd = next(iter(estimate(small_stack(), REGION).by_component().items()))
    assert list(check_budget(plan, total - 1, REGION, CostSettings())) == [
        (
            f"Estimated monthly cost ${total:,.2f} exceeds monthlyBudgetUsd ${total - 1:,.2f} by $1.00; "
            f"the largest part is {largest} (${largest_usd:,.2f}).",  # everything priced: nothing left out
            None,
        )
    ]
    assert initial_config(load_settings("staging"))["stack-monthly-budget"] == EnforcementLevel.ADVISORY
    assert initial_config(load_settings("production"))["stack-monthly-budget"] == EnforcementLevel.MANDATORY


def test_budget_finding_reads_the_stacks_usage_is_exact_at_the_budget_and_points_at_the_largest_part() -> (
    None
):
    usage = CostSettings(nat_processed_gb_per_month=5000)
    rows = [*small_stack(db_class="db.r6g.xlarge", multi_az=True), res("aws:rds/instance:Instance", "bare")]
    plan = _stack(rows)
    result = estimate(rows, REGION, usage, strict=False)
    total, database = result.total, result.by_component()["Database"]
    assert estimate(rows, REGION, strict=False).total < total - 100  # the usage assumption matters
    assert list(check_budget(plan, total, REGION, usage)) == []  # exactly at the budget is within it
    assert list(check_budget(plan, total - 0.01, REGION, usage)) == [
        (
            f"Estimated monthly cost ${total:,.2f} exceeds monthlyBudgetUsd ${total - 0.01:,.2f} by $0.01; "
            f"the largest part is Database (${database:,.2f}). "
            "Not priced, so left out: bare (aws:rds/instance:Instance).",
            None,
        )
    ]


def test_price_table_file_is_the_one_the_pack_reads() -> None:
    assert Path(PRICES_PATH).name == "prices.json" and TABLE["version"]


def test_pr_comment_shows_the_monthly_delta_first_and_the_changes_as_code() -> None:
    from stacks.comment import PreviewData, Run, build_payload, render_comment, render_stack

    base = estimate(small_stack(db_class="db.r6g.large", multi_az=True), REGION, on=DAY).to_json()
    bigger = estimate(small_stack(db_class="db.r6g.xlarge", multi_az=True), REGION, on=DAY).to_json()
    _, changes = delta_summary(base, bigger)
    hostile = "<img src=x onerror=alert(1)> @everyone"
    before = {"project": "p", "stack": "staging", "resources": small_stack()}
    payload = build_payload(
        diff_plans(before, before),
        None,
        pr=7,
        head_sha="a" * 40,
        stack="staging",
        cost=(base["monthlyUsd"], bigger["monthlyUsd"], [c.replace("`", "") for c in changes] + [hostile]),
    )
    data = PreviewData.model_validate(payload)
    head, _ = render_stack(data)
    delta = bigger["monthlyUsd"] - base["monthlyUsd"]
    assert head[2] == (
        f"**Estimated cost: +${delta:,.2f}/month** (${base['monthlyUsd']:,.2f} → ${bigger['monthlyUsd']:,.2f}, "
        "on-demand list prices; see plan.md)"
    )
    assert head[3] == "- `postgres db.r6g.large Multi-AZ → db.r6g.xlarge Multi-AZ: +$376.68`"
    assert f"- `{hostile}`" in head  # the PR's text is literal, never markup
    run = Run("o/r", "o/r", "b", "a" * 40, "pull_request")
    assert len(render_comment([data, data], run)) < COMMENT_LIMIT


def test_comment_schema_bounds_the_cost_data() -> None:
    from pydantic import ValidationError

    from stacks.comment import PreviewData, build_payload

    payload = build_payload(None, None, pr=7, head_sha="a" * 40, stack="staging", exit_code=1)
    payload["cost"] = {"beforeUsd": 1.0, "afterUsd": -5.0, "changes": []}
    with pytest.raises(ValidationError):
        PreviewData.model_validate(payload)
    payload["cost"] = {"beforeUsd": 1.0, "afterUsd": 2.0, "changes": ["x"] * 9}
    with pytest.raises(ValidationError):
        PreviewData.model_validate(payload)


@pytest.mark.parametrize(
    ("type_", "props", "balancers"),
    [
        (
            "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy",
            {
                "spec": {
                    "provider": {"kubernetes": {"envoyService": {"type": "LoadBalancer", "annotations": NLB}}}
                }
            },
            1,
        ),
        ("kubernetes:helm.sh/v3:Release", {"values": {"controller": {"service": {"annotations": NLB}}}}, 1),
        (
            "kubernetes:core/v1:Service",
            {"metadata": {"annotations": NLB}, "spec": {"type": "LoadBalancer"}},
            1,
        ),
        ("kubernetes:core/v1:Service", {"metadata": {"annotations": NLB}, "spec": {"type": "ClusterIP"}}, 0),
        ("kubernetes:helm.sh/v3:Release", {"values": {"controller": {"service": {"type": "NodePort"}}}}, 0),
    ],
)
def test_an_nlb_is_priced_wherever_a_service_asks_for_one(
    type_: str, props: dict[str, Any], balancers: int
) -> None:
    result = estimate([res(type_, "lb", **props)], REGION, on=DAY)
    hours = TABLE["hoursPerMonth"]
    expected = balancers * (price("nlb.hour") + price("nlb.lcu-hour")) * hours  # nlbLcu defaults to 1
    assert result.total == pytest.approx(expected)


def test_dashboard_shows_the_llm_cost_per_enhanced_ticket_at_the_documented_prices() -> None:
    root = PRICES_PATH.parents[1]
    dashboard = json.loads((root / "components/assets/grafana-dashboard.json").read_text(encoding="utf-8"))
    constants = {v["name"]: v["query"] for v in dashboard["templating"]["list"] if v["type"] == "constant"}
    panel = next(p for p in dashboard["panels"] if p["title"] == "LLM cost per enhanced ticket (USD)")
    expr = panel["targets"][0]["expr"]
    assert "${llm_input_usd_per_mtok}" in expr and "${llm_output_usd_per_mtok}" in expr
    assert 'ai_agents_enhancements_total{outcome="succeeded"}' in expr
    docs = (root / "docs/cost.md").read_text(encoding="utf-8")
    assert f"${constants['llm_input_usd_per_mtok']} per 1M tokens" in docs
    assert f"${constants['llm_output_usd_per_mtok']} per 1M tokens" in docs


def test_prices_refresh_command_updates_the_table_or_leaves_it_alone(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stacks.cli import app

    offer = tmp_path / "AmazonRDS-eu-west-1.json"
    offer.write_text(json.dumps(OFFER), encoding="utf-8")
    table = tmp_path / "prices.json"
    keep = ("rds.postgres.db.r6g.large.multi-az", "kms.key")
    subset = TABLE | {"regions": {REGION: {"prices": {k: RAW[k] for k in keep}}}}
    table.write_text(json.dumps(subset), encoding="utf-8")
    runner = CliRunner()
    args = ["prices", "refresh", "--offer", str(offer), "--table", str(table)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads(table.read_text(encoding="utf-8"))["regions"][REGION]["prices"]
    assert written["rds.postgres.db.r6g.large.multi-az"]["usd"] == pytest.approx(0.523)
    # A table figure the offer file lacks: exit 2, one line, the table untouched.
    subset["regions"][REGION]["prices"]["rds.postgres.db.t4g.medium.single-az"] = RAW[
        "rds.postgres.db.t4g.medium.single-az"
    ]
    table.write_text(json.dumps(subset), encoding="utf-8")
    before = table.read_text(encoding="utf-8")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "left unchanged" in result.output
    assert table.read_text(encoding="utf-8") == before


def test_diff_prices_a_base_planned_before_cost_json_with_the_heads_region_and_usage(tmp_path: Path) -> None:
    from stacks.cost import diff_cost, write_cost

    old_dir, new_dir = tmp_path / "base", tmp_path / "head"
    old_dir.mkdir()
    new_dir.mkdir()
    before = {"project": "p", "stack": "staging", "resources": small_stack(nodes=2)}
    after = {"project": "p", "stack": "staging", "resources": small_stack(nodes=3)}
    usage = CostSettings(nat_processed_gb_per_month=0)
    _, document = plan_estimate(after["resources"], REGION, usage)
    write_cost(document, new_dir)  # the base has no cost.json: planned by an older version
    text = diff_cost(old_dir / "plan.json", new_dir / "plan.json", before, after)
    node_hour = price("ec2.m6i.large") * TABLE["hoursPerMonth"]
    assert text is not None and text.startswith(f"**Estimated cost: +${node_hour:,.2f}/month**")
    assert diff_cost(old_dir / "plan.json", tmp_path / "nowhere" / "plan.json", before, after) == (
        "_Estimated cost: not available (neither plan has a cost.json (plan them with this version of "
        "python -m stacks plan))._"
    )
