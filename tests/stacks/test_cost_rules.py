"""The cost estimate rule by rule: every pricing rule priced by hand from the table (items, figures,
price keys, assumptions), the price table's loading, the JSON shapes, component ownership, shadowed
and unpriced resources, and the strict and lenient modes' messages."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from components.cost_settings import CostSettings
from policy.cost import (
    PRICES_PATH,
    UNPRICED_BILLABLE,
    Estimate,
    Line,
    Price,
    UnpricedError,
    estimate,
    load_prices,
)

REGION = "eu-west-1"
DAY = date(2026, 12, 2)
STACK = "urn:pulumi:staging::ai-agents-platform::"
TABLE = json.loads(PRICES_PATH.read_text(encoding="utf-8"))
RAW = TABLE["regions"][REGION]["prices"]
VERSION = TABLE["version"]
H = float(TABLE["hoursPerMonth"])
NLB = {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}

NAT = "aws:ec2/natGateway:NatGateway"
VPCE = "aws:ec2/vpcEndpoint:VpcEndpoint"
LOGS = "aws:cloudwatch/logGroup:LogGroup"
RDS = "aws:rds/instance:Instance"
CACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
SERVICE = "kubernetes:core/v1:Service"


def price(key: str) -> float:
    return float(RAW[key]["usd"])


def res(type_: str, name: str, parent: str | None = None, **props: Any) -> dict[str, Any]:
    return {"urn": f"{STACK}{type_}::{name}", "type": type_, "name": name, "parent": parent, "props": props}


def row(line: Line) -> tuple[Any, ...]:
    return (line.item, line.monthly_usd, line.prices, line.assumption)


def rows(
    plan: list[dict[str, Any]], usage: CostSettings | None = None, on: date = DAY
) -> list[tuple[Any, ...]]:
    return [row(line) for line in estimate(plan, REGION, usage, on=on).lines]


def want(item: str, usd: float, key: str, assumption: str | None = None) -> tuple[Any, ...]:
    return (item, pytest.approx(usd), (key,), assumption)


def unpriced_message(name: str, type_: str, key: str) -> str:
    return f"{name} ({type_}): no price for {key!r} in {REGION} (price table {VERSION})"


# --- the price table ------------------------------------------------------------------------------


def test_load_prices_reads_every_figure_and_the_support_calendar() -> None:
    table = load_prices(REGION)
    assert (table.version, table.hours_per_month, table.region) == (VERSION, H, REGION)
    assert dict(table.prices) == {
        key: Price(key, float(item["usd"]), item["unit"], item["source"], item["asOf"])
        for key, item in RAW.items()
    }
    assert dict(table.eks_standard_support_ends) == TABLE["eksStandardSupportEnds"]["versions"]
    assert table.eks_calendar_source == TABLE["eksStandardSupportEnds"]["source"]


def test_load_prices_reads_the_table_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    document = {
        "version": "test.1",
        "hoursPerMonth": 100,
        "eksStandardSupportEnds": {"source": "calendar", "versions": {"1.40": "2030-01-01"}},
        "regions": {
            "xx-test-1": {
                "prices": {"kms.key": {"usd": 2, "unit": "month", "source": "by hand", "asOf": "2026-01-01"}}
            }
        },
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    table = load_prices("xx-test-1", path)
    assert (table.version, table.hours_per_month, table.region) == ("test.1", 100.0, "xx-test-1")
    assert dict(table.prices) == {"kms.key": Price("kms.key", 2.0, "month", "by hand", "2026-01-01")}
    assert dict(table.eks_standard_support_ends) == {"1.40": "2030-01-01"}
    assert table.eks_calendar_source == "calendar"
    # The table it is given prices the plan, region and all.
    result = estimate([res("aws:kms/key:Key", "key")], "xx-test-1", on=DAY, table=table)
    assert (result.region, result.price_version, result.total) == ("xx-test-1", "test.1", 2.0)
    with pytest.raises(UnpricedError, match=re.escape("the price table test.1 has no region 'eu-west-1'")):
        load_prices(REGION, path)


def test_an_unknown_region_names_the_table_and_the_region() -> None:
    with pytest.raises(UnpricedError) as raised:
        load_prices("ap-south-2")
    assert str(raised.value) == f"the price table {VERSION} has no region 'ap-south-2'"


def test_a_missing_price_names_the_key_the_region_and_the_table() -> None:
    with pytest.raises(UnpricedError) as raised:
        load_prices(REGION).get("ec2.x9.huge")
    assert str(raised.value) == f"no price for 'ec2.x9.huge' in {REGION} (price table {VERSION})"


# --- the JSON shapes ------------------------------------------------------------------------------


def test_lines_and_the_estimate_serialize_with_figures_rounded_to_cents() -> None:
    plan = [
        res(CACHE, "cache", nodeType="cache.t4g.small", engine="valkey", numCacheClusters=1),
        res("aws:cloudwatch/metricAlarm:MetricAlarm", "alarm"),
    ]
    cache_usd = price("elasticache.valkey.cache.t4g.small") * H  # 21.024: three decimals
    result = estimate(plan, REGION, on=DAY)
    assert result.to_json() == {
        "region": REGION,
        "priceTable": VERSION,
        "on": "2026-12-02",
        "monthlyUsd": round(cache_usd + price("cloudwatch.alarm"), 2),
        "lines": [
            {
                "component": "cache",
                "resource": "cache",
                "type": CACHE,
                "item": "1 x cache.t4g.small (valkey)",
                "monthlyUsd": round(cache_usd, 2),
                "prices": ["elasticache.valkey.cache.t4g.small"],
                "assumption": None,
            },
            {
                "component": "alarm",
                "resource": "alarm",
                "type": "aws:cloudwatch/metricAlarm:MetricAlarm",
                "item": "standard-resolution alarm",
                "monthlyUsd": price("cloudwatch.alarm"),
                "prices": ["cloudwatch.alarm"],
                "assumption": None,
            },
        ],
    }
    assert result.to_json()["monthlyUsd"] != cache_usd + price("cloudwatch.alarm")
    ecr = Line("c", "r", "t", "i", 1.23456, ("a", "b"), "x=1")
    assert ecr.to_json() == {
        "component": "c",
        "resource": "r",
        "type": "t",
        "item": "i",
        "monthlyUsd": 1.23,
        "prices": ["a", "b"],
        "assumption": "x=1",
    }


def test_an_empty_plan_is_an_empty_estimate() -> None:
    result = estimate([], REGION, on=DAY)
    assert (result.lines, result.unpriced, result.total, result.by_component()) == ([], [], 0, {})
    assert Estimate("r", "v", "d").to_json() == {
        "region": "r",
        "priceTable": "v",
        "on": "d",
        "monthlyUsd": 0,
        "lines": [],
    }


def test_by_component_sums_each_component_and_lists_the_dearest_first() -> None:
    result = Estimate("r", "v", "d")
    result.lines += [
        Line("Cheap", "a", "t", "i", 1.5, ()),
        Line("Dear", "b", "t", "i", 10.0, ()),
        Line("Cheap", "c", "t", "i", 2.0, ()),
        Line("Middle", "d", "t", "i", 5.0, ()),
    ]
    assert list(result.by_component().items()) == [("Dear", 10.0), ("Middle", 5.0), ("Cheap", 3.5)]
    assert result.total == 18.5


# --- the rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "props", "on", "expected"),
    [
        (
            "eks:index:Cluster",
            {"version": "1.33"},
            date(2026, 7, 29),  # the last day of standard support
            [
                want(
                    "control plane, Kubernetes 1.33 (standard support)",
                    price("eks.cluster.standard") * H,
                    "eks.cluster.standard",
                )
            ],
        ),
        (
            "aws:eks/cluster:Cluster",
            {"version": "1.33"},
            date(2026, 7, 30),
            [
                want(
                    "control plane, Kubernetes 1.33 (extended support since 2026-07-29)",
                    price("eks.cluster.extended") * H,
                    "eks.cluster.extended",
                )
            ],
        ),
        (
            "eks:index:Cluster",
            {"version": "1.99"},  # not in the calendar: standard support
            date(2040, 1, 1),
            [
                want(
                    "control plane, Kubernetes 1.99 (standard support)",
                    price("eks.cluster.standard") * H,
                    "eks.cluster.standard",
                )
            ],
        ),
        (
            "eks:index:Cluster",
            {},
            DAY,
            [
                want(
                    "control plane, Kubernetes ? (standard support)",
                    price("eks.cluster.standard") * H,
                    "eks.cluster.standard",
                )
            ],
        ),
    ],
    ids=["last-day-of-standard", "extended", "version-not-in-calendar", "no-version"],
)
def test_eks_control_plane(type_: str, props: dict[str, Any], on: date, expected: list[Any]) -> None:
    assert rows([res(type_, "eks", **props)], on=on) == expected


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            {"instanceTypes": ["m6a.large", "m6i.large"], "scalingConfig": {"desiredSize": 3}},
            [want("3 x m6a.large (desired size)", 3 * price("ec2.m6a.large") * H, "ec2.m6a.large")],
        ),
        (
            {
                "instanceTypes": "m6i.xlarge",
                "scalingConfig": {"minSize": 4, "maxSize": 9},
                "capacityType": "ON_DEMAND",
            },
            [want("1 x m6i.xlarge (desired size)", price("ec2.m6i.xlarge") * H, "ec2.m6i.xlarge")],
        ),
        (
            {"instanceTypes": ["m6i.large"], "scalingConfig": {"desiredSize": 2.5}},
            [want("2.5 x m6i.large (desired size)", 2.5 * price("ec2.m6i.large") * H, "ec2.m6i.large")],
        ),
        (
            {"instanceTypes": ["m6i.large"], "scalingConfig": {"desiredSize": True}},  # not a number
            [want("1 x m6i.large (desired size)", price("ec2.m6i.large") * H, "ec2.m6i.large")],
        ),
        (
            {"instanceTypes": ["m6i.large"], "scalingConfig": {"desiredSize": 0}},
            [want("0 x m6i.large (desired size)", 0.0, "ec2.m6i.large")],
        ),
        (
            {"instanceTypes": ["m6i.2xlarge"], "scalingConfig": {"desiredSize": 2}, "capacityType": "SPOT"},
            [
                want(
                    "2 x m6i.2xlarge (desired size)",
                    2 * price("ec2.m6i.2xlarge") * H,
                    "ec2.m6i.2xlarge",
                    "SPOT capacity priced at the on-demand rate (an upper bound)",
                )
            ],
        ),
    ],
    ids=["first-listed-type", "type-as-a-string-no-desired-size", "fractional", "bool-size", "zero", "spot"],
)
def test_node_group(props: dict[str, Any], expected: list[Any]) -> None:
    assert rows([res("eks:index:ManagedNodeGroup", "ng", **props)]) == expected
    assert rows([res("aws:eks/nodeGroup:NodeGroup", "ng", **props)]) == expected


def test_a_node_group_without_instance_types_is_priced_as_t3_medium() -> None:
    plan = [res("eks:index:ManagedNodeGroup", "ng", scalingConfig={"desiredSize": 1})]
    with pytest.raises(UnpricedError) as raised:
        estimate(plan, REGION, on=DAY)
    assert str(raised.value) == unpriced_message("ng", "eks:index:ManagedNodeGroup", "ec2.t3.medium")


def test_nat_gateways_share_the_processed_traffic() -> None:
    usage = CostSettings(nat_processed_gb_per_month=300)
    one = rows([res(NAT, "nat-a")], usage)
    assert one == [
        want("gateway hours", price("natgateway.hour") * H, "natgateway.hour"),
        want(
            "300 GB processed",
            300 * price("natgateway.gb"),
            "natgateway.gb",
            "natProcessedGbPerMonth=300 split over 1 gateway(s)",
        ),
    ]
    three = rows(
        [res(NAT, "nat-a"), res("aws:ec2/eip:Eip", "ip"), res(NAT, "nat-b"), res(NAT, "nat-c")], usage
    )
    share = want(
        "100 GB processed",
        100 * price("natgateway.gb"),
        "natgateway.gb",
        "natProcessedGbPerMonth=300 split over 3 gateway(s)",
    )
    hours = want("gateway hours", price("natgateway.hour") * H, "natgateway.hour")
    eip = want("public IPv4 address", price("ipv4.public.hour") * H, "ipv4.public.hour")
    assert three == [hours, share, eip, hours, share, hours, share]


def test_nat_gateway_default_traffic_is_the_settings_default() -> None:
    assert rows([res(NAT, "nat")])[1] == want(
        "100 GB processed",
        100 * price("natgateway.gb"),
        "natgateway.gb",
        "natProcessedGbPerMonth=100 split over 1 gateway(s)",
    )


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            {
                "engine": "postgres",
                "instanceClass": "db.r6g.large",
                "multiAz": True,
                "allocatedStorage": 100,
                "storageType": "gp3",
            },
            [
                want(
                    "db.r6g.large Multi-AZ",
                    price("rds.postgres.db.r6g.large.multi-az") * H,
                    "rds.postgres.db.r6g.large.multi-az",
                ),
                want(
                    "100 GB gp3 storage", 100 * price("rds.storage.gp3.multi-az"), "rds.storage.gp3.multi-az"
                ),
            ],
        ),
        (
            # engine and storage type default to postgres and gp3; a truthy non-True multiAz is single-AZ
            {"instanceClass": "db.t4g.large", "multiAz": "true", "allocatedStorage": 20.5},
            [
                want(
                    "db.t4g.large Single-AZ",
                    price("rds.postgres.db.t4g.large.single-az") * H,
                    "rds.postgres.db.t4g.large.single-az",
                ),
                want(
                    "20.5 GB gp3 storage",
                    20.5 * price("rds.storage.gp3.single-az"),
                    "rds.storage.gp3.single-az",
                ),
            ],
        ),
        (
            {"instanceClass": "db.t4g.medium", "multiAz": False},  # no storage given: 0 GB
            [
                want(
                    "db.t4g.medium Single-AZ",
                    price("rds.postgres.db.t4g.medium.single-az") * H,
                    "rds.postgres.db.t4g.medium.single-az",
                ),
                want("0 GB gp3 storage", 0.0, "rds.storage.gp3.single-az"),
            ],
        ),
        (
            {"instanceClass": "db.t4g.medium", "allocatedStorage": 10, "performanceInsightsEnabled": True},
            [
                want(
                    "db.t4g.medium Single-AZ",
                    price("rds.postgres.db.t4g.medium.single-az") * H,
                    "rds.postgres.db.t4g.medium.single-az",
                ),
                want(
                    "10 GB gp3 storage", 10 * price("rds.storage.gp3.single-az"), "rds.storage.gp3.single-az"
                ),
                want("Performance Insights, 7 days", 0.0, "rds.performance-insights.7-day"),
            ],
        ),
        (
            {
                "instanceClass": "db.t4g.medium",
                "allocatedStorage": 10,
                "performanceInsightsEnabled": "yes",  # only True turns it on
                "performanceInsightsRetentionPeriod": 731,
            },
            [
                want(
                    "db.t4g.medium Single-AZ",
                    price("rds.postgres.db.t4g.medium.single-az") * H,
                    "rds.postgres.db.t4g.medium.single-az",
                ),
                want(
                    "10 GB gp3 storage", 10 * price("rds.storage.gp3.single-az"), "rds.storage.gp3.single-az"
                ),
            ],
        ),
    ],
    ids=[
        "multi-az",
        "defaults",
        "no-storage",
        "performance-insights-default-retention",
        "performance-insights-not-true",
    ],
)
def test_rds_instance(props: dict[str, Any], expected: list[Any]) -> None:
    assert rows([res(RDS, "db", **props)]) == expected


def test_rds_performance_insights_seven_days_is_free() -> None:
    plan = [
        res(
            RDS,
            "db",
            instanceClass="db.t4g.medium",
            allocatedStorage=10,
            performanceInsightsEnabled=True,
            performanceInsightsRetentionPeriod=7,
        )
    ]
    assert rows(plan)[2] == want("Performance Insights, 7 days", 0.0, "rds.performance-insights.7-day")


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {
                "instanceClass": "db.t4g.medium",
                "performanceInsightsEnabled": True,
                "performanceInsightsRetentionPeriod": 8,
            },
            f"db ({RDS}): db: Performance Insights retention 8 days is not in the table",
        ),
        (
            {"instanceClass": "db.t4g.medium", "engine": "mysql"},
            unpriced_message("db", RDS, "rds.mysql.db.t4g.medium.single-az"),
        ),
        ({"engine": "postgres"}, unpriced_message("db", RDS, "rds.postgres..single-az")),
        (
            {"instanceClass": "db.t4g.medium", "storageType": "io2", "multiAz": True},
            unpriced_message("db", RDS, "rds.storage.io2.multi-az"),
        ),
    ],
    ids=["long-retention", "other-engine", "no-class", "other-storage"],
)
def test_rds_instance_unpriced(props: dict[str, Any], message: str) -> None:
    with pytest.raises(UnpricedError) as raised:
        estimate([res(RDS, "db", **props)], REGION, on=DAY)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("props", "nodes", "item"),
    [
        (
            {
                "nodeType": "cache.r7g.large",
                "engine": "valkey",
                "numNodeGroups": 2,
                "replicasPerNodeGroup": 2,
            },
            6,
            "6 x cache.r7g.large (valkey)",
        ),
        (
            {"nodeType": "cache.r7g.large", "engine": "valkey", "replicasPerNodeGroup": 1},
            2,
            "2 x cache.r7g.large (valkey)",
        ),
        (
            # replicas take precedence over the number of cache clusters
            {
                "nodeType": "cache.r7g.large",
                "engine": "valkey",
                "replicasPerNodeGroup": 0,
                "numCacheClusters": 3,
            },
            1,
            "1 x cache.r7g.large (valkey)",
        ),
        (
            {
                "nodeType": "cache.r7g.large",
                "engine": "valkey",
                "numNodeGroups": 3,
                "replicasPerNodeGroup": "two",
            },
            3,
            "3 x cache.r7g.large (valkey)",
        ),
        (
            {"nodeType": "cache.r7g.large", "engine": "valkey", "numCacheClusters": 3},
            3,
            "3 x cache.r7g.large (valkey)",
        ),
        (
            {"nodeType": "cache.r7g.large", "engine": "valkey", "numNodeGroups": 4},
            1,
            "1 x cache.r7g.large (valkey)",
        ),
    ],
    ids=[
        "groups-times-replicas",
        "one-group",
        "replicas-over-clusters",
        "replicas-not-a-number",
        "clusters",
        "default",
    ],
)
def test_cache_nodes(props: dict[str, Any], nodes: int, item: str) -> None:
    key = f"elasticache.valkey.{props['nodeType']}"
    assert rows([res(CACHE, "cache", **props)]) == [want(item, nodes * price(key) * H, key)]


@pytest.mark.parametrize(
    ("props", "key"),
    [
        ({"nodeType": "cache.r7g.large"}, "elasticache.redis.cache.r7g.large"),  # engine defaults to redis
        ({"engine": "valkey"}, "elasticache.valkey."),
    ],
    ids=["default-engine", "no-node-type"],
)
def test_cache_unpriced(props: dict[str, Any], key: str) -> None:
    with pytest.raises(UnpricedError) as raised:
        estimate([res(CACHE, "cache", **props)], REGION, on=DAY)
    assert str(raised.value) == unpriced_message("cache", CACHE, key)


def _nest(spec: dict[str, Any], depth: int) -> dict[str, Any]:
    """``spec`` as the value at ``depth`` below the props (alternating mappings and lists)."""
    value: Any = spec
    for level in range(depth):
        value = {"v": value} if (depth - level) % 2 else [value]
    return value  # the outermost level is a mapping: the props


@pytest.mark.parametrize(
    ("props", "balancers"),
    [
        ({"annotations": NLB}, 1),  # a chart's service spec: type defaults to LoadBalancer
        ({"annotations": NLB, "type": "LoadBalancer"}, 1),
        ({"annotations": NLB, "type": "NodePort"}, 0),
        ({"annotations": NLB, "enabled": False}, 0),
        ({"annotations": NLB, "enabled": True}, 1),
        ({"annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "external"}}, 1),
        ({"annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb-ip"}}, 0),
        ({"annotations": {"other": "nlb"}}, 0),
        ({"annotations": "nlb"}, 0),
        ({"metadata": {"annotations": NLB}}, 1),
        ({"metadata": {"annotations": NLB}, "spec": {"type": "ClusterIP"}}, 0),
        ({"metadata": {"annotations": NLB}, "spec": {"type": "LoadBalancer"}, "type": "NodePort"}, 0),
        ({"annotations": NLB, "metadata": {"annotations": {}}}, 1),
        # a spec's children are not other services, even when it is not itself a load balancer
        ({"annotations": NLB, "type": "ClusterIP", "internal": {"annotations": NLB}}, 0),
        (
            {
                "a": {"annotations": NLB},
                "b": [{"annotations": NLB}, {"annotations": NLB, "type": "ClusterIP"}],
            },
            2,
        ),
        ({"services": [[{"annotations": NLB}], {"x": {"annotations": NLB}}], "n": 3, "s": "nlb"}, 2),
        # the policy engine hands lists over as read-only sequences, not as list
        ({"services": ({"annotations": NLB}, ({"annotations": NLB},))}, 2),
        (_nest({"annotations": NLB}, 12), 1),  # deep in a chart's values
        (_nest({"annotations": NLB}, 13), 0),  # past the depth searched
    ],
)
def test_nlb_services_counted(props: dict[str, Any], balancers: int) -> None:
    lcu = 1.5
    lines = rows([res("kubernetes:helm.sh/v3:Release", "ingress", **props)], CostSettings(nlb_lcu=lcu))
    if not balancers:
        assert lines == []
        return
    assert lines == [
        want(f"{balancers} Network Load Balancer(s)", balancers * price("nlb.hour") * H, "nlb.hour"),
        want("1.5 NLCU", lcu * balancers * price("nlb.lcu-hour") * H, "nlb.lcu-hour", "nlbLcu=1.5"),
    ]


@pytest.mark.parametrize(
    "type_",
    [
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:helm.sh/v4:Chart",
        SERVICE,
        "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy",
    ],
)
def test_every_kubernetes_form_of_an_nlb_is_priced(type_: str) -> None:
    assert rows([res(type_, "lb", metadata={"annotations": NLB})]) == [
        want("1 Network Load Balancer(s)", price("nlb.hour") * H, "nlb.hour"),
        want("1 NLCU", price("nlb.lcu-hour") * H, "nlb.lcu-hour", "nlbLcu=1"),
    ]


def test_gateway_endpoints_are_free() -> None:
    plan = [
        res(VPCE, "s3", serviceName="com.amazonaws.eu-west-1.s3"),
        res(
            VPCE,
            "dynamodb",
            serviceName="com.amazonaws.eu-west-1.dynamodb",
            vpcEndpointType="Gateway",
            subnetIds=["a"],
        ),
        res(VPCE, "unnamed", vpcEndpointType="Gateway"),
    ]
    assert rows(plan) == [
        want("gateway endpoint com.amazonaws.eu-west-1.s3", 0.0, "vpce.gateway"),
        want("gateway endpoint com.amazonaws.eu-west-1.dynamodb", 0.0, "vpce.gateway"),
        want("gateway endpoint ", 0.0, "vpce.gateway"),
    ]


def test_interface_endpoints_are_priced_per_az_and_share_the_traffic() -> None:
    usage = CostSettings(interface_endpoint_processed_gb_per_month=40)
    plan = [
        res(
            VPCE,
            "ecr",
            serviceName="com.amazonaws.eu-west-1.ecr.api",
            vpcEndpointType="Interface",
            subnetIds=["a", "b", "c"],
        ),
        res(VPCE, "sts", serviceName="com.amazonaws.eu-west-1.sts", vpcEndpointType="Interface"),
    ]
    share = want(
        "20 GB processed",
        20 * price("vpce.interface.gb"),
        "vpce.interface.gb",
        "interfaceEndpointProcessedGbPerMonth split over 2 endpoint(s)",
    )
    assert rows(plan, usage) == [
        want(
            "interface endpoint com.amazonaws.eu-west-1.ecr.api in 3 AZ(s)",
            3 * price("vpce.interface.hour") * H,
            "vpce.interface.hour",
        ),
        share,
        want(
            "interface endpoint com.amazonaws.eu-west-1.sts in 1 AZ(s)",
            price("vpce.interface.hour") * H,
            "vpce.interface.hour",
        ),
        share,
    ]
    assert rows([res(VPCE, "one", vpcEndpointType="Interface", subnetIds=[])]) == [
        want("interface endpoint  in 1 AZ(s)", price("vpce.interface.hour") * H, "vpce.interface.hour"),
        want(
            "10 GB processed",
            10 * price("vpce.interface.gb"),
            "vpce.interface.gb",
            "interfaceEndpointProcessedGbPerMonth split over 1 endpoint(s)",
        ),
    ]


@pytest.mark.parametrize(
    ("type_", "item", "key"),
    [
        ("aws:kms/key:Key", "customer-managed key", "kms.key"),
        ("aws:secretsmanager/secret:Secret", "secret", "secretsmanager.secret"),
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "standard-resolution alarm", "cloudwatch.alarm"),
        ("aws:ec2/eip:Eip", "public IPv4 address", "ipv4.public.hour"),
    ],
)
def test_flat_and_hourly_items(type_: str, item: str, key: str) -> None:
    monthly = price(key) * H if key.endswith(".hour") else price(key)
    assert rows([res(type_, "x")]) == [want(item, monthly, key)]


def test_log_groups_share_the_ingested_and_stored_volume() -> None:
    usage = CostSettings(log_ingest_gb_per_month=12, log_stored_gb=90)
    ingest = want(
        "6 GB ingested",
        6 * price("logs.ingest.gb"),
        "logs.ingest.gb",
        "logIngestGbPerMonth=12 split over 2 log group(s)",
    )
    stored = want(
        "45 GB stored",
        45 * price("logs.storage.gb"),
        "logs.storage.gb",
        "logStoredGb=90 split over 2 log group(s)",
    )
    assert rows([res(LOGS, "a"), res(LOGS, "b")], usage) == [ingest, stored, ingest, stored]
    assert rows([res(LOGS, "a")]) == [
        want(
            "10 GB ingested",
            10 * price("logs.ingest.gb"),
            "logs.ingest.gb",
            "logIngestGbPerMonth=10 split over 1 log group(s)",
        ),
        want(
            "50 GB stored",
            50 * price("logs.storage.gb"),
            "logs.storage.gb",
            "logStoredGb=50 split over 1 log group(s)",
        ),
    ]


def test_ecr_repositories_each_store_the_assumed_images() -> None:
    repo = "aws:ecr/repository:Repository"
    assert (
        rows([res(repo, "a"), res(repo, "b")], CostSettings(ecr_stored_gb_per_repository=7.5))
        == [
            want(
                "7.5 GB of images",
                7.5 * price("ecr.storage.gb"),
                "ecr.storage.gb",
                "ecrStoredGbPerRepository=7.5",
            ),
        ]
        * 2
    )
    assert rows([res(repo, "a")]) == [
        want("5 GB of images", 5 * price("ecr.storage.gb"), "ecr.storage.gb", "ecrStoredGbPerRepository=5")
    ]


# --- the estimate ---------------------------------------------------------------------------------


def test_lines_name_the_top_level_component_the_resource_and_its_type() -> None:
    platform = f"{STACK}ai-agents:platform:Platform::platform"
    database = f"{STACK}ai-agents:database:Database::db"
    plan = [
        {
            "urn": platform,
            "type": "ai-agents:platform:Platform",
            "name": "platform",
            "parent": None,
            "props": {},
        },
        {
            "urn": database,
            "type": "ai-agents:database:Database",
            "name": "db",
            "parent": platform,
            "props": {},
        },
        res("aws:kms/key:Key", "db-key", database),
        res("aws:secretsmanager/secret:Secret", "loose", f"{STACK}unknown::gone"),  # parent not in the plan
        {"type": "aws:kms/key:Key", "name": "no-urn", "parent": platform, "props": {}},
        res("aws:kms/key:Key", "direct", platform),
    ]
    result = estimate(plan, REGION, on=DAY)
    assert [(line.component, line.resource, line.type) for line in result.lines] == [
        ("Platform", "db-key", "aws:kms/key:Key"),
        ("loose", "loose", "aws:secretsmanager/secret:Secret"),
        ("Platform", "no-urn", "aws:kms/key:Key"),
        ("Platform", "direct", "aws:kms/key:Key"),
    ]
    assert result.by_component() == pytest.approx(
        {"Platform": 3 * price("kms.key"), "loose": price("secretsmanager.secret")}
    )


def test_an_owner_type_without_a_module_is_the_component_name() -> None:
    owner = f"{STACK}Standalone::top"
    plan = [
        {"urn": owner, "type": "Standalone", "name": "top", "parent": None, "props": {}},
        res("aws:kms/key:Key", "key", owner),
    ]
    assert [line.component for line in estimate(plan, REGION, on=DAY).lines] == ["Standalone"]


def test_a_parent_without_a_urn_is_not_an_owner() -> None:
    plan = [
        {"type": "ai-agents:database:Database", "name": "db", "parent": None, "props": {}},
        res("aws:kms/key:Key", "key", ""),
    ]
    assert [line.component for line in estimate(plan, REGION, on=DAY).lines] == ["key"]


def test_pulumi_eks_children_are_priced_once() -> None:
    plan = [
        res("eks:index:Cluster", "eks", version="1.35"),
        res("aws:eks/cluster:Cluster", "eks-child", version="1.35"),
        res(
            "eks:index:ManagedNodeGroup", "ng", instanceTypes=["m6i.large"], scalingConfig={"desiredSize": 2}
        ),
        res(
            "aws:eks/nodeGroup:NodeGroup",
            "ng-child",
            instanceTypes=["m6i.large"],
            scalingConfig={"desiredSize": 2},
        ),
    ]
    assert [line.resource for line in estimate(plan, REGION, on=DAY).lines] == ["eks", "ng"]
    alone = estimate(plan[1::2], REGION, on=DAY)  # the children only: they are priced
    assert [line.resource for line in alone.lines] == ["eks-child", "ng-child"]
    assert alone.total == pytest.approx((price("eks.cluster.standard") + 2 * price("ec2.m6i.large")) * H)


def test_free_and_untyped_resources_add_no_line() -> None:
    plan = [
        res("aws:iam/role:Role", "role"),
        {"urn": f"{STACK}x::untyped", "name": "untyped", "props": {}},
        res("kubernetes:core/v1:ConfigMap", "cm", metadata={"annotations": NLB}),
    ]
    result = estimate(plan, REGION, on=DAY)
    assert (result.lines, result.unpriced) == ([], [])


@pytest.mark.parametrize("type_", sorted(UNPRICED_BILLABLE))
def test_a_billable_type_without_a_rule_is_named(type_: str) -> None:
    plan = [res(type_, "thing"), res("aws:kms/key:Key", "key")]
    with pytest.raises(UnpricedError) as raised:
        estimate(plan, REGION, on=DAY)
    assert str(raised.value) == f"thing ({type_}): {type_} costs money but has no pricing rule"
    lenient = estimate(plan, REGION, on=DAY, strict=False)
    assert lenient.unpriced == [f"thing ({type_})"]
    assert [line.resource for line in lenient.lines] == ["key"]


def test_the_lenient_mode_skips_every_unpriced_resource_and_prices_the_rest() -> None:
    plan = [
        res("aws:lb/loadBalancer:LoadBalancer", "alb"),
        res(RDS, "db", instanceClass="db.x9.enormous", allocatedStorage=10),
        res("aws:kms/key:Key", "key"),
        res("eks:index:ManagedNodeGroup", "gpu", instanceTypes=["p5.48xlarge"]),
        res("aws:ec2/eip:Eip", "ip"),
    ]
    with pytest.raises(UnpricedError) as raised:
        estimate(plan, REGION, on=DAY, strict=True)
    assert str(raised.value) == (
        "alb (aws:lb/loadBalancer:LoadBalancer): aws:lb/loadBalancer:LoadBalancer costs money but has no pricing rule"
    )
    with pytest.raises(UnpricedError) as raised:
        estimate(plan[1:], REGION, on=DAY)
    assert str(raised.value) == unpriced_message("db", RDS, "rds.postgres.db.x9.enormous.single-az")
    result = estimate(plan, REGION, on=DAY, strict=False)
    assert result.unpriced == [
        "alb (aws:lb/loadBalancer:LoadBalancer)",
        f"db ({RDS})",  # no partial line for the storage either
        "gpu (eks:index:ManagedNodeGroup)",
    ]
    assert [line.resource for line in result.lines] == ["key", "ip"]
    assert result.total == pytest.approx(price("kms.key") + price("ipv4.public.hour") * H)


def test_the_estimate_is_dated_today_unless_told_otherwise() -> None:
    before = date.today().isoformat()
    result = estimate([res("eks:index:Cluster", "eks", version="1.31")], REGION)
    assert result.on in (before, date.today().isoformat())
    assert (result.region, result.price_version) == (REGION, VERSION)
    # 1.31's standard support ended 2025-11-26: today is after that.
    assert rows([res("eks:index:Cluster", "eks", version="1.31")], on=date.today()) == [
        want(
            "control plane, Kubernetes 1.31 (extended support since 2025-11-26)",
            price("eks.cluster.extended") * H,
            "eks.cluster.extended",
        )
    ]
    assert [row(line) for line in result.lines] == rows(
        [res("eks:index:Cluster", "eks", version="1.31")], on=date.today()
    )
