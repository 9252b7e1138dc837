"""Every benchmark in quick mode, as `make bench` runs it, so none of them rots.

Each one runs as a subprocess with `--quick`, writing into a temporary results directory (the recorded
results in bench/results stay intact), and must leave a well-formed result: the fields the docs quote
present, ratios and rates positive finite numbers. Goals are not asserted here: quick runs are too short
to judge them, and `make bench` is where the figures come from.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# In `make bench` order: scale reads the ingest sweep written just before it, drain the worker's result.
BENCHMARKS = ["plan", "ingest", "worker", "e2e", "scale", "drain"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-results")


def positive(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def run_quick(name: str, results: Path) -> dict[str, Any]:
    env = {**os.environ, "BENCH_RESULTS_DIR": str(results)}
    completed = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, (
        f"bench.{name} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    )
    data = json.loads((results / f"{name}.json").read_text())
    assert data["benchmark"] == name
    assert data["quick"] is True
    assert data["machine"]["cpus"] >= 1 and len(data["machine"]["load_average"]) == 3
    return data


def check_plan(data: dict[str, Any]) -> None:
    assert positive(data["ratio"]) and positive(data["ratio_to_floor"])
    for key in ("bare_import", "sdk_floor", "plan"):
        assert positive(data[key]["median_s"])
    assert data["sdk_modules"], "the program's SDK modules were not discovered"


def check_ingest(data: dict[str, Any]) -> None:
    assert positive(data["ratio"])
    for side in ("hello", "webhook"):
        assert positive(data[side]["rps"]) and positive(data[side]["p99_ms"])
        assert data[side]["requests"] > 0
    webhook = data["webhook"]
    assert webhook["raw"]["status_202"] > 0 and webhook["raw"]["wrapped"] == 0
    assert webhook["jobs_inserted"] >= webhook["raw"]["status_202"], "202s without a job row"
    assert [s["connections"] for s in data["sweep"]] == [10, 100, 200]


def check_worker(data: dict[str, Any]) -> None:
    assert positive(data["ratio"]) and positive(data["throughput_jobs_per_s"])
    assert data["succeeded"] == data["jobs"] and data["errors"] == 0
    # The ideal is an upper bound: a ratio above the true floor's would mean a broken measurement.
    assert data["ratio_to_floor"] <= 1.05


def check_e2e(data: dict[str, Any]) -> None:
    assert data["errors"] == 0 and data["e2e"]["n"] == data["jobs"]
    assert positive(data["ratio_p95_to_goal"])
    # No note can land before the fakes' own latency has passed.
    assert data["e2e"]["p50_s"] >= data["path_latency_s"]


def check_scale(data: dict[str, Any], results: Path) -> None:
    assert positive(data["flatness"]) and data["flatness"] >= 1
    assert len(data["plan"]) >= 2 and all(positive(row["median_s"]) for row in data["plan"])
    if (results / "ingest.json").exists():  # ingest ran first (not with -k scale alone)
        assert data["ingest_sweep"] and [r["connections"] for r in data["ingest_sweep"]] == [10, 100, 200]
    assert (results / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def check_drain(data: dict[str, Any]) -> None:
    assert (
        positive(data["ratio"]) and positive(data["keda"]["drain_s"]) and positive(data["cpu_hpa"]["drain_s"])
    )
    # Queue-length scaling can only add replicas to what the CPU HPA has, so it can only be faster.
    assert data["ratio"] <= 1 and data["keda"]["peak_replicas"] >= data["cpu_hpa"]["peak_replicas"]
    assert data["max_replicas_floor_s"] <= data["keda"]["drain_s"]


CHECKS = {
    "plan": check_plan,
    "ingest": check_ingest,
    "worker": check_worker,
    "e2e": check_e2e,
    "drain": check_drain,
}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_quick_mode_writes_a_well_formed_result(name: str, results: Path) -> None:
    data = run_quick(name, results)
    if name == "scale":
        check_scale(data, results)
    elif name == "drain":
        check_drain(data)
        assert (results / "drain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        CHECKS[name](data)
