"""Kill rate per module from mutmut's results (mutants/**/*.py.meta), and every mutant that lived.

``make mutation`` runs it after ``mutmut run``: ``python -m tests.mutation.report [GLOB ...]`` counts
only the mutants whose names match a glob (the ones that run was asked to check). A mutant killed by
a failing test or a timeout counts as killed; "no tests" (no selected test calls the function) counts
as a survivor, because nothing would notice the change. Exit status 1 when a module is below the
threshold (``--min-kill-rate``, percent).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

MUTANTS = Path("mutants")
KILLED = {"killed", "timeout", "caught by type check"}


def results(root: Path, globs: list[str]) -> dict[str, dict[str, str]]:
    """{module: {mutant name: status}} for the mutants matching any glob."""
    by_module: dict[str, dict[str, str]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        module = meta.relative_to(root).as_posix().removesuffix(".meta")
        codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        chosen = {
            name: status_by_exit_code[code]
            for name, code in codes.items()
            if not globs or any(fnmatch.fnmatchcase(name, g) for g in globs)
        }
        if chosen:
            by_module[module] = chosen
    return by_module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Kill rate per module from mutmut's results.")
    parser.add_argument("globs", nargs="*", help="mutant name globs, e.g. 'policy.*'")
    parser.add_argument("--min-kill-rate", type=float, default=90.0)
    args = parser.parse_args(argv)
    by_module = results(MUTANTS, args.globs)
    if not by_module:
        print("no mutmut results under mutants/: run `make mutation` first")
        return 2
    print("| module | mutants | killed | timeout | survived | no tests | not run | kill rate |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    totals: Counter[str] = Counter()
    below: list[str] = []
    lived: list[str] = []
    for module, statuses in by_module.items():
        counts = Counter(statuses.values())
        totals.update(counts)
        checked = len(statuses) - counts["not checked"]
        killed = sum(counts[s] for s in KILLED)
        rate = 100.0 * killed / checked if checked else 0.0
        if checked and rate < args.min_kill_rate:
            below.append(module)
        print(
            f"| {module} | {len(statuses)} | {killed - counts['timeout']} | {counts['timeout']} | "
            f"{counts['survived']} | {counts['no tests']} | {counts['not checked']} | {rate:.1f} % |"
        )
        lived += [n for n, s in sorted(statuses.items()) if s in {"survived", "no tests", "suspicious"}]
    checked = sum(totals.values()) - totals["not checked"]
    killed = sum(totals[s] for s in KILLED)
    print(
        f"| **total** | {sum(totals.values())} | {killed - totals['timeout']} | {totals['timeout']} | "
        f"{totals['survived']} | {totals['no tests']} | {totals['not checked']} | "
        f"{100.0 * killed / max(checked, 1):.1f} % |"
    )
    print(f"\n{len(lived)} mutant(s) lived (`mutmut show NAME` prints the change):")
    for name in lived:
        print(f"  {name}")
    if below:
        print(f"\nbelow {args.min_kill_rate:g} %: {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
