"""``python -m stacks scan-gate``: the deploy workflow's gate on the registry's scan findings.

Exit codes as the rest of the CLI: 0 every image clean (or only allowlisted findings), 1 deploy stopped
(findings, an expired allowlist entry, a failed scan, or no finished scan in time), 2 bad usage.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from infra.config import ConfigError, load_stack_file
from stacks.console import EXIT_FINDINGS, err, fail, out
from stacks.scan_gate import DEFAULT_ALLOWLIST, Gate, ImageRef, describe, load_allowlist, passed


def image_refs(images: list[str], outputs: Path | None) -> list[str]:
    """``--image`` refs, plus ``repositoryUrls`` x ``imageDigests`` of ``pulumi stack output --json``."""
    refs = list(images)
    if outputs is not None:
        data = json.loads(outputs.read_text(encoding="utf-8"))
        urls, digests = data.get("repositoryUrls", {}), data.get("imageDigests", {})
        refs += [f"{urls[name]}@{digest}" for name, digest in sorted(digests.items())]
    return refs


def ecr_client() -> Any:
    """The caller's credentials and region (AWS_ENDPOINT_URL_ECR honoured: the tests' moto server)."""
    import boto3  # pyright: ignore[reportMissingTypeStubs]

    made: dict[str, Any] = {"ecr": boto3.Session().client("ecr")}  # pyright: ignore[reportUnknownMemberType]
    return made["ecr"]


def scan_gate(  # noqa: PLR0917 - typer maps each parameter to an argument or option
    stack: Annotated[str, typer.Argument(help="stack name: its registry.scanBlockSeverity is the threshold")],
    image: Annotated[
        list[str] | None, typer.Option("--image", help="<repository url>@sha256:<hex>; repeatable")
    ] = None,
    outputs: Annotated[
        Path | None,
        typer.Option("--outputs", help="`pulumi stack output --json` (repositoryUrls, imageDigests)"),
    ] = None,
    allowlist: Annotated[
        Path, typer.Option(help="reviewed exceptions with expiry dates")
    ] = DEFAULT_ALLOWLIST,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each image's scan")] = 1800.0,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 15.0,
) -> None:
    """Wait for ECR's scan of each digest; exit 1 on findings at or above the stack's threshold."""
    try:
        threshold = load_stack_file(stack).registry.scan_block_severity
        accepted = load_allowlist(allowlist)
        refs = [ImageRef.parse(ref) for ref in image_refs(image or [], outputs)]
    except (ConfigError, ValueError, OSError, KeyError) as exc:
        raise fail(str(exc)) from None
    if not refs:
        raise fail("no image to check: pass --image or --outputs")
    today = datetime.now(UTC).date()
    results = Gate(ecr_client(), threshold, accepted, today, timeout, interval_seconds=interval).run(refs)
    for result in results:
        out.print(describe(result), highlight=False, soft_wrap=True)
    if not passed(results):
        err.print(f"[bold red]scan gate:[/] deploy stopped (threshold {threshold})", highlight=False)
        raise typer.Exit(EXIT_FINDINGS)
    out.print(f"[green]scan gate passed[/] ({len(results)} image(s), threshold {threshold})", highlight=False)
