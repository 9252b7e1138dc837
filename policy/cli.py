"""``python -m policy check PLAN.json [--stack NAME] [--format table|json|sarif] [--output FILE]``: the
pack over an offline plan; ``python -m policy docs [--check]``: the generated part of docs/policy.md.

Exit codes: 0 no mandatory violation, 1 mandatory violations, 2 bad usage or an unreadable plan or
policy config (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from policy.checker import PlanError, PolicyReport, check_plan
from policy.settings import PolicyConfigError

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"python -m policy: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m policy", description="Run the CrossGuard policy pack over a plan file.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = commands.add_parser("check", help="check a plan.json (build/plan/<stack>/plan.json)")
    check.add_argument("plan", type=Path, help="the plan file")
    check.add_argument("--stack", help="evaluate as this stack (default: the plan's 'stack')")
    check.add_argument(
        "--format",
        choices=("table", "json", "sarif"),
        default="table",
        help="table (default), json (with each finding's file and line) or sarif (SARIF 2.1.0)",
    )
    check.add_argument("--json", action="store_true", help="same as --format json")
    check.add_argument("--output", "-o", type=Path, help="write json/sarif here instead of stdout")
    docs = commands.add_parser("docs", help="write the generated policy table of docs/policy.md")
    docs.add_argument("--check", action="store_true", help="exit 1 if docs/policy.md is out of date")
    return parser


def load_plan(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{path}: no such file") from None
    except OSError as exc:
        raise PlanError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        plan = json.loads(text)
    except ValueError as exc:
        raise PlanError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(plan, dict):
        raise PlanError(f"{path}: the plan must be a JSON object with 'stack' and 'resources'")
    return plan  # pyright: ignore[reportUnknownVariableType]


def render(report: PolicyReport, console: Console) -> None:
    if report.violations:
        table = Table(
            title=f"{len(report.violations)} policy violation(s) on stack {report.stack or '(unnamed)'}"
        )
        for column in ("policy", "level", "resource", "message"):
            table.add_column(column, overflow="fold")
        for v in report.violations:
            table.add_row(v.policy, v.enforcement_level, v.urn or "(stack)", v.message)
        console.print(table)
    verdict = "passed" if report.passed else f"FAILED ({report.mandatory_count} mandatory violation(s))"
    console.print(f"{report.policy_pack}: {report.policies} policies, {verdict}", highlight=False)


def _docs(check: bool) -> int:
    from policy.docs import DOC_PATH, render

    current = DOC_PATH.read_text(encoding="utf-8")
    try:
        text = render(current)
    except ValueError as exc:
        print(f"python -m policy docs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if check:
        if text != current:
            print(f"{DOC_PATH.name} is out of date: run python -m policy docs", file=sys.stderr)
            return EXIT_VIOLATIONS
        return EXIT_OK
    DOC_PATH.write_text(text, encoding="utf-8")
    return EXIT_OK


def _emit(document: dict[str, Any], output: Path | None) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "docs":
        return _docs(args.check)
    try:
        plan = load_plan(args.plan)
        report = check_plan(plan, stack=args.stack)
    except PlanError as exc:
        message = str(exc) if str(exc).startswith(str(args.plan)) else f"{args.plan}: {exc}"
        print(f"python -m policy check: {message}", file=sys.stderr)
        return EXIT_USAGE
    except PolicyConfigError as exc:
        print(f"python -m policy check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    output_format = "json" if args.json else args.format
    if output_format == "json":
        from policy.sarif import located_json

        _emit(located_json(report), args.output)
    elif output_format == "sarif":
        from policy.sarif import to_sarif

        _emit(to_sarif(report), args.output)
    else:
        render(report, Console(width=200, soft_wrap=False))
    return EXIT_OK if report.passed else EXIT_VIOLATIONS
