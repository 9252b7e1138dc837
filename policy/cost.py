"""Estimated monthly cost of a plan, from a dated price table (``policy/prices.json``), offline.

One function, :func:`estimate`, turns the plan's resources (type + props, as the offline plan and the
engine see them) into priced lines: the component that owns the resource, the resource, what is
priced, the monthly figure, and the price keys it used (each with its source in the table). Usage-based
items (NAT and endpoint traffic, logs, image storage, NLB capacity) use the stack file's ``cost``
section (:class:`components.cost_settings.CostSettings`) and say so.

A resource type that costs money but has no rule here, or a rule whose price key is missing from the
table for the stack's region, is an :class:`UnpricedError` — never a silent zero (a test plans both
stacks and fails on one).

It lives in the policy pack because the pack enforces ``monthlyBudgetUsd``; ``stacks/cost.py``
renders it into plan.md and the PR comment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, cast

from components.cost_settings import CostSettings
from policy.core import as_dict, as_list, get, strings

PRICES_PATH = Path(__file__).resolve().parent / "prices.json"

Resource = Mapping[str, Any]


class UnpricedError(LookupError):
    """A resource the estimate cannot price (no rule, or no price for the region)."""


@dataclass(frozen=True)
class Price:
    key: str
    usd: float
    unit: str
    source: str
    as_of: str


@dataclass(frozen=True)
class PriceTable:
    version: str
    hours_per_month: float
    region: str
    prices: Mapping[str, Price]
    eks_standard_support_ends: Mapping[str, str]
    eks_calendar_source: str

    def get(self, key: str) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            raise UnpricedError(
                f"no price for {key!r} in {self.region} (price table {self.version})"
            ) from None


@cache
def _document(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def load_prices(region: str, path: Path = PRICES_PATH) -> PriceTable:
    document = _document(path)
    regions = cast(dict[str, Any], document["regions"])
    if region not in regions:
        raise UnpricedError(f"the price table {document['version']} has no region {region!r}")
    prices = {
        key: Price(key, float(item["usd"]), item["unit"], item["source"], item["asOf"])
        for key, item in regions[region]["prices"].items()
    }
    calendar = document["eksStandardSupportEnds"]
    return PriceTable(
        version=document["version"],
        hours_per_month=float(document["hoursPerMonth"]),
        region=region,
        prices=prices,
        eks_standard_support_ends=calendar["versions"],
        eks_calendar_source=calendar["source"],
    )


@dataclass(frozen=True)
class Line:
    component: str
    resource: str
    type: str
    item: str  # what is priced, e.g. "db.r6g.large Multi-AZ, 730 h"
    monthly_usd: float
    prices: tuple[str, ...]
    assumption: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "resource": self.resource,
            "type": self.type,
            "item": self.item,
            "monthlyUsd": round(self.monthly_usd, 2),
            "prices": list(self.prices),
            "assumption": self.assumption,
        }


@dataclass
class Estimate:
    region: str
    price_version: str
    on: str
    lines: list[Line] = field(default_factory=list[Line])
    unpriced: list[str] = field(default_factory=list[str])

    @property
    def total(self) -> float:
        return sum(line.monthly_usd for line in self.lines)

    def by_component(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for line in self.lines:
            totals[line.component] = totals.get(line.component, 0.0) + line.monthly_usd
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "priceTable": self.price_version,
            "on": self.on,
            "monthlyUsd": round(self.total, 2),
            "lines": [line.to_json() for line in self.lines],
        }


# --- the rules: one per priced resource type -------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    table: PriceTable
    usage: CostSettings
    on: date
    resources: Sequence[Resource]

    @property
    def hours(self) -> float:
        return self.table.hours_per_month

    def count(self, type_: str) -> int:
        return sum(1 for r in self.resources if r.get("type") == type_)


Rule = Callable[[Resource, _Context], Iterable[tuple[str, float, tuple[str, ...], str | None]]]


def _num(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _hourly(ctx: _Context, key: str, quantity: float = 1.0) -> float:
    return ctx.table.get(key).usd * ctx.hours * quantity


def _eks_cluster(r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    version = str(r["props"].get("version") or "")
    ends = ctx.table.eks_standard_support_ends.get(version)
    extended = ends is not None and ctx.on.isoformat() > ends
    key = "eks.cluster.extended" if extended else "eks.cluster.standard"
    support = f"extended support since {ends}" if extended else "standard support"
    yield f"control plane, Kubernetes {version or '?'} ({support})", _hourly(ctx, key), (key,), None


def _node_group(r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    props = r["props"]
    types = strings(props.get("instanceTypes")) or ["t3.medium"]
    nodes = _num(get(props, "scalingConfig.desiredSize"), 1.0)
    # On-demand managed node groups launch the first listed type (prioritized allocation).
    key = f"ec2.{types[0]}"
    note = None
    if str(props.get("capacityType") or "ON_DEMAND") == "SPOT":
        note = "SPOT capacity priced at the on-demand rate (an upper bound)"
    yield f"{nodes:g} x {types[0]} (desired size)", _hourly(ctx, key, nodes), (key,), note


def _nat_gateway(_r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    gateways = max(ctx.count("aws:ec2/natGateway:NatGateway"), 1)
    share = ctx.usage.nat_processed_gb_per_month / gateways
    yield "gateway hours", _hourly(ctx, "natgateway.hour"), ("natgateway.hour",), None
    yield (
        f"{share:g} GB processed",
        ctx.table.get("natgateway.gb").usd * share,
        ("natgateway.gb",),
        f"natProcessedGbPerMonth={ctx.usage.nat_processed_gb_per_month:g} split over {gateways} gateway(s)",
    )


def _eip(_r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    yield "public IPv4 address", _hourly(ctx, "ipv4.public.hour"), ("ipv4.public.hour",), None


def _rds(r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    props = r["props"]
    klass = str(props.get("instanceClass") or "")
    az = "multi-az" if props.get("multiAz") is True else "single-az"
    engine = str(props.get("engine") or "postgres")
    key = f"rds.{engine}.{klass}.{az}"
    yield f"{klass} {'Multi-AZ' if az == 'multi-az' else 'Single-AZ'}", _hourly(ctx, key), (key,), None
    storage_type = str(props.get("storageType") or "gp3")
    gib = _num(props.get("allocatedStorage"))
    storage_key = f"rds.storage.{storage_type}.{az}"
    yield f"{gib:g} GB {storage_type} storage", ctx.table.get(storage_key).usd * gib, (storage_key,), None
    if props.get("performanceInsightsEnabled") is True:
        days = _num(props.get("performanceInsightsRetentionPeriod"), 7)
        if days > 7:
            raise UnpricedError(
                f"{r['name']}: Performance Insights retention {days:g} days is not in the table"
            )
        yield "Performance Insights, 7 days", 0.0, ("rds.performance-insights.7-day",), None


def _cache(r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    props = r["props"]
    node_type = str(props.get("nodeType") or "")
    engine = str(props.get("engine") or "redis")
    groups = _num(props.get("numNodeGroups"), 1.0)
    replicas = props.get("replicasPerNodeGroup")
    nodes = (
        groups * (1 + _num(replicas)) if replicas is not None else _num(props.get("numCacheClusters"), 1.0)
    )
    key = f"elasticache.{engine}.{node_type}"
    yield f"{nodes:g} x {node_type} ({engine})", _hourly(ctx, key, nodes), (key,), None


NLB_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"


def _nlb_services(value: Any, depth: int = 0) -> int:
    """Service specs inside a Kubernetes object (a Service, a Helm release's values, an EnvoyProxy's
    envoyService) that ask the AWS Load Balancer Controller for an NLB."""
    if depth > 12:
        return 0
    if isinstance(value, Mapping):
        node = cast(Mapping[str, Any], value)
        annotations = as_dict(node.get("annotations") or get(node, "metadata.annotations"))
        kind = node.get("type") or get(node, "spec.type") or "LoadBalancer"  # charts default to LoadBalancer
        is_lb = kind == "LoadBalancer" and node.get("enabled") is not False
        if annotations.get(NLB_ANNOTATION) in ("nlb", "external"):
            return 1 if is_lb else 0  # this node is the service spec: its children are not others
        return sum(_nlb_services(child, depth + 1) for child in node.values())
    # A list, as the policy engine hands it over (a read-only sequence proxy) or as JSON reads it.
    return sum(_nlb_services(child, depth + 1) for child in as_list(value))


def _nlb(r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    balancers = _nlb_services(r["props"])
    if not balancers:
        return
    lcu = ctx.usage.nlb_lcu
    yield f"{balancers} Network Load Balancer(s)", _hourly(ctx, "nlb.hour", balancers), ("nlb.hour",), None
    yield f"{lcu:g} NLCU", _hourly(ctx, "nlb.lcu-hour", lcu * balancers), ("nlb.lcu-hour",), f"nlbLcu={lcu:g}"


def _vpc_endpoint(r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    props = r["props"]
    service = str(props.get("serviceName") or "")
    if str(props.get("vpcEndpointType") or "Gateway") == "Gateway":
        yield f"gateway endpoint {service}", 0.0, ("vpce.gateway",), None
        return
    azs = max(len(props.get("subnetIds") or []), 1)
    endpoints = max(ctx.count("aws:ec2/vpcEndpoint:VpcEndpoint"), 1)
    share = ctx.usage.interface_endpoint_processed_gb_per_month / endpoints
    yield (
        f"interface endpoint {service} in {azs} AZ(s)",
        _hourly(ctx, "vpce.interface.hour", azs),
        ("vpce.interface.hour",),
        None,
    )
    yield (
        f"{share:g} GB processed",
        ctx.table.get("vpce.interface.gb").usd * share,
        ("vpce.interface.gb",),
        (f"interfaceEndpointProcessedGbPerMonth split over {endpoints} endpoint(s)"),
    )


def _flat(key: str, label: str) -> Rule:
    def rule(_r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
        yield label, ctx.table.get(key).usd, (key,), None

    return rule


def _log_group(_r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    groups = max(ctx.count("aws:cloudwatch/logGroup:LogGroup"), 1)
    ingest = ctx.usage.log_ingest_gb_per_month / groups
    stored = ctx.usage.log_stored_gb / groups
    yield (
        f"{ingest:g} GB ingested",
        ctx.table.get("logs.ingest.gb").usd * ingest,
        ("logs.ingest.gb",),
        (f"logIngestGbPerMonth={ctx.usage.log_ingest_gb_per_month:g} split over {groups} log group(s)"),
    )
    yield (
        f"{stored:g} GB stored",
        ctx.table.get("logs.storage.gb").usd * stored,
        ("logs.storage.gb",),
        (f"logStoredGb={ctx.usage.log_stored_gb:g} split over {groups} log group(s)"),
    )


def _ecr(_r: Resource, ctx: _Context) -> Iterable[tuple[str, float, tuple[str, ...], str | None]]:
    gb = ctx.usage.ecr_stored_gb_per_repository
    yield (
        f"{gb:g} GB of images",
        ctx.table.get("ecr.storage.gb").usd * gb,
        ("ecr.storage.gb",),
        (f"ecrStoredGbPerRepository={gb:g}"),
    )


RULES: dict[str, Rule] = {
    "eks:index:Cluster": _eks_cluster,
    "aws:eks/cluster:Cluster": _eks_cluster,
    "eks:index:ManagedNodeGroup": _node_group,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:ec2/natGateway:NatGateway": _nat_gateway,
    "aws:ec2/eip:Eip": _eip,
    "aws:rds/instance:Instance": _rds,
    "aws:elasticache/replicationGroup:ReplicationGroup": _cache,
    "kubernetes:helm.sh/v3:Release": _nlb,
    "kubernetes:helm.sh/v4:Chart": _nlb,
    "kubernetes:core/v1:Service": _nlb,
    "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy": _nlb,
    "aws:ec2/vpcEndpoint:VpcEndpoint": _vpc_endpoint,
    "aws:kms/key:Key": _flat("kms.key", "customer-managed key"),
    "aws:secretsmanager/secret:Secret": _flat("secretsmanager.secret", "secret"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": _flat("cloudwatch.alarm", "standard-resolution alarm"),
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:ecr/repository:Repository": _ecr,
}

#: Types that cost money but that the estimate does not price; anything else outside RULES is free
#: (IAM, security groups, route tables, parameter groups, Kubernetes objects...).
UNPRICED_BILLABLE = frozenset(
    {
        "aws:ec2/instance:Instance",
        "aws:elasticache/cluster:Cluster",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:rds/cluster:Cluster",
        "aws:rds/clusterInstance:ClusterInstance",
        "aws:ec2/volume:Volume",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketV2:BucketV2",
        "aws:dynamodb/table:Table",
        "aws:elasticache/serverlessCache:ServerlessCache",
    }
)


#: Under the real engine pulumi-eks's components show their children too: price one form only.
SHADOWED_BY = {
    "aws:eks/cluster:Cluster": "eks:index:Cluster",
    "aws:eks/nodeGroup:NodeGroup": "eks:index:ManagedNodeGroup",
}


def _component_of(resource: Resource, by_urn: Mapping[str, Resource]) -> str:
    """The top-level component that owns the resource (``Database``), or the resource's own name."""
    owner: Resource | None = None
    parent = resource.get("parent")
    while parent and parent in by_urn:
        owner = by_urn[parent]
        parent = owner.get("parent")
    if owner is None:
        return str(resource.get("name"))
    return str(owner["type"]).rsplit(":", 1)[-1]


def estimate(
    resources: Sequence[Resource],
    region: str,
    usage: CostSettings | None = None,
    *,
    on: date | None = None,
    table: PriceTable | None = None,
    strict: bool = True,
) -> Estimate:
    """Price every resource of a plan; UnpricedError names the first one that cannot be priced
    (``strict=False``: such resources are skipped and named in ``Estimate.unpriced``)."""
    table = table or load_prices(region)
    ctx = _Context(table, usage or CostSettings(), on or date.today(), resources)
    by_urn = {str(r["urn"]): r for r in resources if r.get("urn")}
    result = Estimate(region, table.version, ctx.on.isoformat())
    present = {str(r.get("type")) for r in resources}
    for resource in resources:
        type_ = str(resource.get("type"))
        if SHADOWED_BY.get(type_) in present:
            continue
        rule = RULES.get(type_)
        try:
            if type_ in UNPRICED_BILLABLE:
                raise UnpricedError(f"{type_} costs money but has no pricing rule")
            items = list(rule(resource, ctx)) if rule else []
        except UnpricedError as exc:
            if strict:
                raise UnpricedError(f"{resource.get('name')} ({type_}): {exc}") from None
            result.unpriced.append(f"{resource.get('name')} ({type_})")
            continue
        component = _component_of(resource, by_urn)
        for item, usd, keys, assumption in items:
            result.lines.append(
                Line(component, str(resource.get("name")), type_, item, usd, keys, assumption)
            )
    return result
