"""``python -m stacks prices refresh``: update policy/prices.json from the AWS Price List bulk API.

The bulk API serves one JSON "offer file" per service and region, without credentials:
``https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/<offerCode>/current/<region>/index.json``
(``products`` by SKU with ``productFamily`` and ``attributes``; ``terms.OnDemand[sku][term]
.priceDimensions[rate].pricePerUnit.USD``). The figures that vary by type and region — EC2 instance
types, RDS instance classes and storage, ElastiCache node types — are matched by attributes and
replaced; each then names the offer file's version and publication date as its source. The flat
rates (EKS, NAT, KMS, ...) are recorded from the public price pages and left alone. The EC2 offer
file of a region is large (hundreds of MB): the command downloads to a temporary file, or takes
files already downloaded with ``--offer``.

Nothing here runs at plan time: plans read the table only.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from policy.cost import PRICES_PATH

OFFER_URL = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/{offer}/current/{region}/index.json"

prices_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The cost estimate's price table.")


@dataclass(frozen=True)
class Match:
    offer: str
    family: str
    attributes: Mapping[str, str]
    unit: str  # the offer file's unit: Hrs, GB-Mo


def matcher(key: str) -> Match | None:
    """The offer-file product a price key stands for; None for the flat rates not refreshed."""
    parts = key.split(".", 1)
    if parts[0] == "ec2":
        return Match(
            "AmazonEC2",
            "Compute Instance",
            {
                "instanceType": parts[1],
                "operatingSystem": "Linux",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "capacitystatus": "Used",
                "licenseModel": "No License required",
            },
            "Hrs",
        )
    if key.startswith("rds.storage.gp3."):
        deployment = "Multi-AZ" if key.endswith("multi-az") else "Single-AZ"
        return Match(
            "AmazonRDS",
            "Database Storage",
            {
                "volumeType": "General Purpose-GP3",
                "databaseEngine": "PostgreSQL",
                "deploymentOption": deployment,
            },
            "GB-Mo",
        )
    if key.startswith("rds.postgres."):
        body, _, az = key.removeprefix("rds.postgres.").rpartition(".")
        deployment = "Multi-AZ" if az == "multi-az" else "Single-AZ"
        return Match(
            "AmazonRDS",
            "Database Instance",
            {"instanceType": body, "databaseEngine": "PostgreSQL", "deploymentOption": deployment},
            "Hrs",
        )
    if key.startswith("elasticache."):
        _, engine, node_type = key.split(".", 2)
        return Match(
            "AmazonElastiCache",
            "Cache Instance",
            {"instanceType": node_type, "cacheEngine": engine.capitalize()},
            "Hrs",
        )
    return None


def _on_demand_usd(offer: Mapping[str, Any], sku: str, unit: str) -> float | None:
    terms = cast(Mapping[str, Any], offer.get("terms", {}).get("OnDemand", {}).get(sku, {}))
    for term in terms.values():
        for dimension in cast(Mapping[str, Any], term.get("priceDimensions", {})).values():
            if dimension.get("unit") == unit and "USD" in dimension.get("pricePerUnit", {}):
                return float(dimension["pricePerUnit"]["USD"])
    return None


def _matching(offer: Mapping[str, Any], match: Match, region: str) -> Iterator[float]:
    for sku, product in cast(Mapping[str, Any], offer.get("products", {})).items():
        attributes = cast(Mapping[str, str], product.get("attributes", {}))
        if product.get("productFamily") != match.family or attributes.get("regionCode") != region:
            continue
        if all(attributes.get(k) == v for k, v in match.attributes.items()):
            price = _on_demand_usd(offer, sku, match.unit)
            if price is not None:
                yield price


def refresh(
    document: Mapping[str, Any], region: str, offers: Mapping[str, Mapping[str, Any]], today: date
) -> tuple[dict[str, Any], list[str]]:
    """A new price table with the region's matchable figures taken from ``offers`` (by offer code).

    Returns the document and one line per figure changed or confirmed; a figure whose product the
    offer file does not have is an error (a table that silently keeps an old price is worse).
    """
    new = json.loads(json.dumps(document))
    prices = new["regions"][region]["prices"]
    report: list[str] = []
    for key, item in prices.items():
        match = matcher(key)
        if match is None or match.offer not in offers:
            continue
        offer = offers[match.offer]
        found = sorted(set(_matching(offer, match, region)))
        if len(found) != 1:
            raise ValueError(
                f"{key}: {len(found)} on-demand prices in the {match.offer} offer file ({found[:3]})"
            )
        published = str(offer.get("publicationDate", ""))[:10] or today.isoformat()
        old = float(item["usd"])
        item.update(
            usd=found[0],
            kind="priceList",
            source=f"AWS Price List bulk API, {match.offer} offer {offer.get('version', '?')} for {region}",
            asOf=published,
        )
        report.append(f"{key}: {old:g} -> {found[0]:g} USD/{item['unit']}")
    new["version"] = (
        f"{today.isoformat()}.1" if not new["version"].startswith(today.isoformat()) else _bump(new)
    )
    return new, report


def _bump(document: Mapping[str, Any]) -> str:
    day, _, serial = str(document["version"]).partition(".")
    return f"{day}.{int(serial or 0) + 1}"


def _download(offer: str, region: str, folder: Path) -> Path:
    target = folder / f"{offer}-{region}.json"
    url = OFFER_URL.format(offer=offer, region=region)
    with urllib.request.urlopen(url, timeout=600) as response, target.open("wb") as sink:  # noqa: S310 - fixed https URL
        while chunk := response.read(1 << 20):
            sink.write(chunk)
    return target


@prices_app.command("refresh")
def refresh_command(
    region: Annotated[str, typer.Option(help="region of the table to refresh")] = "eu-west-1",
    offer: Annotated[
        list[Path],
        typer.Option("--offer", help="an offer file already downloaded (repeatable); else download"),
    ] = [],  # noqa: B006 - typer's way to declare a repeatable option
    table: Annotated[Path, typer.Option(help="the price table to update")] = PRICES_PATH,
) -> None:
    """Refresh the price table's EC2, RDS and ElastiCache figures from the AWS Price List bulk API."""
    document = json.loads(table.read_text(encoding="utf-8"))
    if region not in document["regions"]:
        raise typer.BadParameter(f"the table has no region {region!r}; add it to {table.name} first")
    with tempfile.TemporaryDirectory() as scratch:
        paths = list(offer)
        if not paths:
            wanted = {m.offer for k in document["regions"][region]["prices"] if (m := matcher(k))}
            paths = [_download(code, region, Path(scratch)) for code in sorted(wanted)]
        offers: dict[str, Mapping[str, Any]] = {}
        for path in paths:
            data = json.loads(path.read_text(encoding="utf-8"))
            offers[str(data["offerCode"])] = data
    try:
        new, report = refresh(document, region, offers, date.today())
    except ValueError as exc:
        typer.echo(f"error: {exc}; {table.name} left unchanged", err=True)
        raise typer.Exit(2) from None
    table.write_text(json.dumps(new, indent=2) + "\n", encoding="utf-8")
    for line in report:
        typer.echo(line)
    typer.echo(f"wrote {table} (version {new['version']})")
