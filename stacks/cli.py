"""Operator CLI: ``python -m stacks plan|diff|drift|preflight|scan-gate|comment|bootstrap-plan|prices``.

Exit codes: 0 clean, 1 mandatory policy violations (plan) / changes found, 2 bad usage or
invalid stack config — said in one line, never a traceback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from infra.config import ConfigError
from stacks.console import EXIT_FINDINGS, err, out
from stacks.console import fail as _fail
from stacks.cost_refresh import prices_app
from stacks.scan_gate_cli import scan_gate

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def _root() -> None:
    """Offline plan, plan diff and drift detection for the ai-agents-platform stacks."""


def _phase(message: str) -> None:
    out.print(f"[cyan]•[/] {message}", highlight=False)


@app.command()
def plan(
    stack: Annotated[str, typer.Argument(help="stack name: staging or production")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="output directory")] = None,
    stack_file: Annotated[
        Path | None, typer.Option("--stack-file", help="plan this file instead of Pulumi.<stack>.yaml")
    ] = None,
) -> None:
    """Run the program offline under Pulumi's mocks and write build/plan/<stack>/."""
    from policy.cost import UnpricedError
    from policy.settings import load_settings
    from stacks.cost import plan_cost
    from stacks.plan import default_out_dir, load_config, run_program, write_plan
    from stacks.report import counts_by_type, render_plan_markdown

    started = time.perf_counter()
    try:
        values, config = load_config(stack, stack_file)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    _phase(f"config of {stack!r} is valid ({config.environment}, {config.aws.region})")

    try:
        result = run_program(stack, values, config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    _phase(f"program ran under mocks: {len(result.resources)} resources")

    target = out_dir or default_out_dir(stack)
    verdict, manifests = write_plan(result, target, _phase)
    try:
        budget = load_settings(stack).monthly_budget_usd
        cost, cost_section = plan_cost(
            result.to_json()["resources"], config.aws.region, config.cost, target, budget
        )
    except UnpricedError as exc:
        raise _fail(f"cost estimate: {exc} (add it to policy/prices.json; docs/cost.md)") from None
    _phase(f"estimated cost: ${cost.total:,.2f}/month (price table {cost.price_version})")
    (target / "plan.md").write_text(
        render_plan_markdown(result.to_json(), verdict, manifests, cost_section), encoding="utf-8"
    )

    table = Table(title=f"plan: {stack}", title_justify="left")
    table.add_column("resource type")
    table.add_column("count", justify="right")
    for kind, count in counts_by_type(result.resources):
        table.add_row(kind, str(count))
    out.print(table)
    mandatory = [v for v in verdict.get("violations", []) if v.get("enforcementLevel") == "mandatory"]
    for violation in verdict.get("violations", []):
        out.print(
            f"[red]✗[/] {violation['policy']}: {violation.get('urn') or 'stack'}: {violation['message']}"
        )
    elapsed = time.perf_counter() - started
    out.print(f"wrote {target} in {elapsed:.1f}s", highlight=False)
    if mandatory:
        err.print(f"[bold red]{len(mandatory)} mandatory policy violation(s)[/]")
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="plan.json of the base (e.g. main)")],
    new: Annotated[Path, typer.Argument(help="plan.json of the change")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the markdown here")] = None,
    limit: Annotated[int, typer.Option(help="fold details past this many characters")] = 60_000,
) -> None:
    """Markdown diff of two offline plans, with the monthly cost delta and the new plan's policy verdict."""
    from stacks import diff as plan_diff
    from stacks.cost import diff_cost
    from stacks.plan import check_policies

    try:
        before, after = plan_diff.load_plan(old), plan_diff.load_plan(new)
    except plan_diff.PlanFileError as exc:
        raise _fail(str(exc)) from None
    verdict = check_policies(after)
    cost = diff_cost(old, new, before, after)
    markdown = plan_diff.render(plan_diff.diff_plans(before, after), verdict, limit, cost)
    if output:
        output.write_text(markdown, encoding="utf-8")
        out.print(f"wrote {output}", highlight=False)
    else:
        sys.stdout.write(markdown)


@app.command("preview-data")
def preview_data(
    old: Annotated[Path, typer.Argument(help="plan.json of the base")],
    new: Annotated[Path, typer.Argument(help="plan.json of the PR's head (need not exist if it failed)")],
    *,
    stack: Annotated[str, typer.Option(help="stack name: staging or production")],
    pr: Annotated[int, typer.Option(help="the pull request's number (a claim the comment job checks)")],
    head_sha: Annotated[str, typer.Option("--head-sha", help="the commit planned")],
    output: Annotated[Path, typer.Option("--output", "-o", help="write preview.json here")],
    head_exit: Annotated[
        int, typer.Option("--head-exit", help="exit code of the head plan; non-zero: it failed")
    ] = 0,
) -> None:
    """The plan diff as data (preview.json) for the PR comment, which is rendered on the trusted side."""
    import json

    from stacks import diff as plan_diff
    from stacks.comment import PreviewData, build_payload
    from stacks.cost import diff_cost_data
    from stacks.plan import check_policies

    diff_result, verdict, cost = None, None, None
    if head_exit == 0:
        try:
            before, after = plan_diff.load_plan(old), plan_diff.load_plan(new)
        except plan_diff.PlanFileError as exc:
            raise _fail(str(exc)) from None
        verdict = check_policies(after)
        diff_result = plan_diff.diff_plans(before, after)
        cost = diff_cost_data(old, new, before, after)
    payload = build_payload(
        diff_result, verdict, pr=pr, head_sha=head_sha, stack=stack, exit_code=head_exit, cost=cost
    )
    PreviewData.model_validate(payload)  # what the comment job will check, checked here first
    output.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    out.print(f"wrote {output}", highlight=False)


@app.command()
def comment(
    event: Annotated[Path, typer.Option(help="the workflow_run event payload ($GITHUB_EVENT_PATH)")],
    pulls: Annotated[Path, typer.Option(help="GET /repos/{repo}/pulls?state=open&head=… answer")],
    artifacts: Annotated[Path, typer.Option(help="folder of the preview run's artifact zips")],
    output: Annotated[Path, typer.Option("--out", help="write the comment body here")],
    number_out: Annotated[Path, typer.Option("--number-out", help="write the PR number here")],
) -> None:
    """Validate a preview run's artifacts against the run and render the PR comment (trusted side)."""
    from stacks.comment import main as comment_main

    code = comment_main(
        [
            f"--event={event}",
            f"--pulls={pulls}",
            f"--artifacts={artifacts}",
            f"--out={output}",
            f"--number-out={number_out}",
        ]
    )
    if code:
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def drift(
    stack: Annotated[str, typer.Argument(help="stack name: staging or production")],
    report: Annotated[Path | None, typer.Option(help="JSON report path")] = None,
    markdown: Annotated[Path | None, typer.Option(help="also write the report as markdown here")] = None,
) -> None:
    """Refresh and preview (read-only) with the Automation API: exit 0 no drift, 1 drift, 2 cannot run."""
    from stacks.drift import CannotRun, detect, render_markdown, write_report

    try:
        result = detect(stack)
    except CannotRun as exc:
        raise _fail(f"cannot check drift of {stack!r}: {exc}") from None
    path = write_report(result, report or Path("build") / "drift" / f"{stack}.json")
    if markdown:
        markdown.write_text(render_markdown(result), encoding="utf-8")
    if not result.drifted:
        out.print(f"[green]no drift[/] in {stack} (report: {path})", highlight=False)
        return
    table = Table(title=f"drift: {stack}", title_justify="left")
    for column in ("pass", "operation", "type", "resource", "properties"):
        table.add_column(column)
    for r in result.resources:
        table.add_row(r.phase, r.op, r.type, r.urn.rsplit("::", 1)[-1], ", ".join(r.properties))
    out.print(table)
    out.print(f"[red]{len(result.resources)} drifted resource change(s)[/] (report: {path})", highlight=False)
    raise typer.Exit(EXIT_FINDINGS)


@app.command()
def preflight(
    stack: Annotated[str, typer.Argument(help="stack name: staging or production")],
    as_json: Annotated[bool, typer.Option("--json", help="print the findings as JSON")] = False,
    stack_file: Annotated[
        Path | None, typer.Option("--stack-file", help="check this file instead of Pulumi.<stack>.yaml")
    ] = None,
) -> None:
    """Read-only checks of the stack file and the AWS account before `pulumi up`: 0 ready, 1 not, 2 cannot run."""
    import json
    from datetime import UTC, datetime

    from stacks import preflight as checks
    from stacks.plan import load_config

    try:
        values, config = load_config(stack, stack_file)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    try:
        report = checks.run(
            stack, values, config, checks.boto3_clients(config.aws.region), datetime.now(UTC).date()
        )
    except checks.CannotRun as exc:
        raise _fail(f"cannot run preflight of {stack!r}: {exc}") from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=1) + "\n")
    else:
        table = Table(title=f"preflight: {stack} (account {report.account})", title_justify="left")
        for column in ("", "check", "key / resource", "finding", "fix"):
            table.add_column(column)
        marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
        for f in report.findings:
            table.add_row(marks[f.status], f.check, f.key, f.message, f.fix)
        out.print(table)
        out.print("[green]ready[/]" if report.ready else "[red]not ready[/]", highlight=False)
    if not report.ready:
        raise typer.Exit(EXIT_FINDINGS)


@app.command("bootstrap-plan")
def bootstrap_plan(
    stack: Annotated[str, typer.Argument(help="bootstrap stack: bootstrap/Pulumi.<stack>.yaml")] = "account",
    out_dir: Annotated[Path | None, typer.Option("--out", help="output directory")] = None,
) -> None:
    """Run the account bootstrap (bootstrap/) offline under mocks: build/bootstrap/<stack>/plan.json."""
    from bootstrap.config import BootstrapConfigError
    from stacks.bootstrap_plan import run, write
    from stacks.report import counts_by_type

    try:
        plan = run(stack)
    except BootstrapConfigError as exc:
        raise _fail(str(exc)) from None
    path = write(plan, out_dir)
    table = Table(title=f"bootstrap plan: {stack}", title_justify="left")
    table.add_column("resource type")
    table.add_column("count", justify="right")
    for kind, count in counts_by_type(plan.resources()):
        table.add_row(kind, str(count))
    out.print(table)
    out.print(f"wrote {path}", highlight=False)


@app.command("config-doc")
def config_doc(
    check: Annotated[bool, typer.Option("--check", help="exit 1 if the file is out of date")] = False,
) -> None:
    """Write docs/configuration.md from the typed stack config (or check it is current)."""
    from stacks.configdoc import DOC_PATH, render, undocumented_fields

    missing = undocumented_fields()
    if missing:
        raise _fail(f"config fields without a docstring in their settings type: {', '.join(missing)}")
    text = render()
    if check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            err.print(f"{DOC_PATH.relative_to(Path.cwd())} is out of date: run python -m stacks config-doc")
            raise typer.Exit(EXIT_FINDINGS)
        return
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(text, encoding="utf-8")
    out.print(f"wrote {DOC_PATH}")


# `python -m stacks prices refresh`: the cost estimate's price table from the AWS Price List bulk API.
app.add_typer(prices_app, name="prices")
# `python -m stacks scan-gate STACK`: the deploy waits for ECR's scan of what it is about to run.
app.command("scan-gate")(scan_gate)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
