"""Shared bits of the benchmarks: timing subprocesses, the machine, writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def results_dir() -> Path:
    """`bench/results`, or `$BENCH_RESULTS_DIR` (the quick-mode test keeps recorded results intact)."""
    override = os.environ.get("BENCH_RESULTS_DIR")
    return Path(override) if override else RESULTS


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "memory_gib": _memory_gib(),
        # 1, 5 and 15 minute load averages when the result is written: other work on the machine
        # (a test suite, a build) shows up here and explains a noisy figure.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def time_command(argv: list[str], repeat: int) -> list[float]:
    """Wall seconds of ``argv`` run ``repeat`` times from the repository root; fails loudly."""
    samples: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=600)
        samples.append(time.perf_counter() - started)
    return samples


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def summarise(samples: list[float]) -> dict[str, float]:
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "n": len(samples),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    directory = results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **result}, indent=2) + "\n")
    return path


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
