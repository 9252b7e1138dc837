"""Scale shape: offline plan time against app replicas, and ingest p99 against connections; one plot.

    python -m bench.scale [--quick] [--repeat N]

Plan: `python -m stacks plan staging --stack-file X` on candidate stack files generated from
Pulumi.staging.yaml with the API/worker replica bounds and worker concurrency scaled up (each file is
checked to have reached the plan: the HPA's maxReplicas in plan.json). The resource count does not depend
on them, so the expected shape is flat: the result is the ratio of the slowest shape to the fastest,
each by its fastest sample (goal <= 1.15); samples are taken round-robin over the shapes. Tenants are
not infrastructure (rows and secrets created by `python -m app tenants`), so the plan cannot depend
on their number at all.
Ingest: p99 at 10, 100 and 200 connections comes from bench/ingest.py's sweep (results/ingest.json,
written earlier in the same `make bench`); its absence leaves that panel out.
Writes results/scale.json and results/scale.png.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench._common import ROOT, print_table, python, results_dir, summarise, time_command, write_result

GOAL_FLATNESS = 1.15
PROJECT = "ai-agents-platform"
# (api min, api max, worker min, worker max, worker concurrency)
SHAPES = [(2, 4, 2, 6, 16), (4, 20, 4, 30, 32), (10, 80, 10, 120, 64), (20, 200, 20, 200, 128)]


def candidate(base: dict[str, Any], shape: tuple[int, int, int, int, int]) -> dict[str, Any]:
    api_min, api_max, worker_min, worker_max, concurrency = shape
    doc = json.loads(json.dumps(base))
    app = doc["config"][f"{PROJECT}:app"]
    app["api"] = {"minReplicas": api_min, "maxReplicas": api_max}
    app["worker"] = {"minReplicas": worker_min, "maxReplicas": worker_max}
    app["workerConcurrency"] = concurrency
    return doc


# Where the plan carries each component's upper replica bound: the API's HPA, the workers' ScaledObject.
_MAX_REPLICAS = {"kubernetes:autoscaling/": "maxReplicas", "kubernetes:keda.sh/": "maxReplicaCount"}


def max_replicas(plan_json: Path) -> list[int]:
    plan = json.loads(plan_json.read_text())
    return sorted(
        int(r["props"]["spec"][key])
        for r in plan["resources"]
        for prefix, key in _MAX_REPLICAS.items()
        if r["type"].startswith(prefix) and key in r["props"].get("spec", {})
    )


def plan_shapes(shapes: list[tuple[int, int, int, int, int]], repeat: int) -> list[dict[str, Any]]:
    """Time each shape `repeat` times, round-robin, so load from elsewhere hits every shape alike."""
    base = yaml.safe_load((ROOT / "Pulumi.staging.yaml").read_text())
    samples: dict[tuple[int, int, int, int, int], list[float]] = {shape: [] for shape in shapes}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmpdir:
        tmp = Path(tmpdir)
        argvs: dict[tuple[int, int, int, int, int], list[str]] = {}
        for shape in shapes:
            name = "-".join(str(n) for n in shape)
            stack_file = tmp / f"Pulumi.staging-{name}.yaml"
            stack_file.write_text(yaml.safe_dump(candidate(base, shape), sort_keys=False))
            out = str(tmp / f"out-{name}")
            argvs[shape] = python(
                "-m", "stacks", "plan", "staging", "--stack-file", str(stack_file), "--out", out
            )
        for _ in range(repeat):
            for shape in shapes:
                samples[shape] += time_command(argvs[shape], 1)
        for shape in shapes:
            out = tmp / f"out-{'-'.join(str(n) for n in shape)}"
            bounds = max_replicas(out / "plan.json")
            if shape[1] not in bounds or shape[3] not in bounds:
                raise RuntimeError(f"the plan of shape {shape} does not carry its replica bounds: {bounds}")
            rows.append(
                {
                    "api_replicas": [shape[0], shape[1]],
                    "worker_replicas": [shape[2], shape[3]],
                    "worker_concurrency": shape[4],
                    "resources": len(json.loads((out / "plan.json").read_text())["resources"]),
                    **summarise(samples[shape]),
                }
            )
    return rows


def ingest_sweep() -> list[dict[str, Any]] | None:
    path = results_dir() / "ingest.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return [
        {
            "connections": s["connections"],
            "webhook_p50_ms": s["webhook"]["p50_ms"],
            "webhook_p99_ms": s["webhook"]["p99_ms"],
            "webhook_rps": s["webhook"]["rps"],
            "hello_p99_ms": s["hello"]["p99_ms"],
            "hello_rps": s["hello"]["rps"],
        }
        for s in data["sweep"]
    ]


def plot(plan: list[dict[str, Any]], ingest: list[dict[str, Any]] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if ingest else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    ax = axes[0][0]
    x = [row["api_replicas"][1] + row["worker_replicas"][1] for row in plan]
    ax.errorbar(
        x,
        [row["median_s"] for row in plan],
        yerr=[
            [row["median_s"] - row["min_s"] for row in plan],
            [row["max_s"] - row["median_s"] for row in plan],
        ],
        marker="o",
        capsize=3,
        label="median (bars: min-max)",
    )
    ax.plot(x, [row["min_s"] for row in plan], marker="v", linestyle="--", label="fastest sample")
    ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("max replicas (API + worker)")
    ax.set_ylabel("plan wall time (s)")
    ax.set_title("offline plan vs replicas")
    if ingest:
        ax = axes[0][1]
        connections = [row["connections"] for row in ingest]
        ax.plot(connections, [row["webhook_p99_ms"] for row in ingest], marker="o", label="webhook p99")
        ax.plot(connections, [row["webhook_p50_ms"] for row in ingest], marker="s", label="webhook p50")
        ax.plot(connections, [row["hello_p99_ms"] for row in ingest], marker="^", label="hello world p99")
        ax.set_xlabel("concurrent connections (wrk)")
        ax.set_ylabel("latency (ms)")
        ax.set_title("ingest latency vs connections")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, one sample each (for make test)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shapes = [SHAPES[0], SHAPES[-1]] if args.quick else SHAPES
    repeat = 1 if args.quick else args.repeat

    plan = plan_shapes(shapes, repeat)
    ingest = ingest_sweep()
    # The fastest sample of each shape is its cost with the least interference from other work.
    fastest = [row["min_s"] for row in plan]
    flatness = max(fastest) / min(fastest)
    print_table(
        f"offline plan of staging vs replica bounds ({repeat} sample(s) each)",
        ["API min-max", "worker min-max", "concurrency", "resources", "median s", "min s", "max s"],
        [
            [
                "-".join(map(str, row["api_replicas"])),
                "-".join(map(str, row["worker_replicas"])),
                str(row["worker_concurrency"]),
                str(row["resources"]),
                f"{row['median_s']:.2f}",
                f"{row['min_s']:.2f}",
                f"{row['max_s']:.2f}",
            ]
            for row in plan
        ],
    )
    if ingest:
        print_table(
            "ingest vs connections (from ingest.json)",
            ["connections", "webhook req/s", "webhook p50 ms", "webhook p99 ms", "hello p99 ms"],
            [
                [
                    str(r["connections"]),
                    f"{r['webhook_rps']:.0f}",
                    f"{r['webhook_p50_ms']:.1f}",
                    f"{r['webhook_p99_ms']:.1f}",
                    f"{r['hello_p99_ms']:.1f}",
                ]
                for r in ingest
            ],
        )
    png = results_dir() / "scale.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(plan, ingest, png)
    print(
        f"plan time (min of each shape) slowest / fastest = {flatness:.2f} (goal <= {GOAL_FLATNESS}: "
        f"{'flat' if flatness <= GOAL_FLATNESS else 'grows'}); plot: {png}"
    )
    result = {
        "plan": plan,
        "flatness": flatness,
        "goal_flatness": GOAL_FLATNESS,
        "ingest_sweep": ingest,
        "plot": png.name,
        "quick": args.quick,
    }
    print(f"wrote {write_result('scale', result)}")


if __name__ == "__main__":
    main()
