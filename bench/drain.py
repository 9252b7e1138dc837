"""Draining a burst: N jobs queued at once, workers scaled by KEDA on the queue's length vs by CPU.

    python -m bench.drain [--quick] [--jobs N] [--stack production] [--startup S] [--job-seconds S]
                          [--recorded] [--figure PATH]

A model, not a measurement of a cluster: a step simulation (0.5 s steps) of the worker Deployment under
each autoscaler, fed with the worker's throughput measured by bench/worker.py (results/worker.json,
written earlier in the same `make bench`; without it, the recorded run's figures in
docs/performance.md) and the stack's bounds (Pulumi.<stack>.yaml: app.worker, app.workerConcurrency,
app.queueScaling).

* A worker replica runs `workerConcurrency` threads; a thread holds one job for `job_seconds` (the
  measured wall time per job: the I/O wait on the LLM and ServiceDesk Plus) and uses
  `cpu_seconds_per_job` of CPU (measured).
* KEDA reads the queue's length (messages waiting in Redis: jobs not yet taken by a thread; acks are
  late and the prefetch is one per thread) every `pollingInterval` and the HPA it owns wants
  `ceil(queue / targetPerReplica)` replicas, bounded by min/max. The CPU trigger the ScaledObject
  also carries is included: the HPA takes the larger of the two.
* The CPU HPA wants `ceil(current x utilisation / target)` (nothing inside the 10 % tolerance), the
  utilisation being the busy threads' CPU over the pods' CPU request; it re-evaluates every 15 s (the
  controller's default sync period).
* Both: at most max(+scaleUpPercent %, +scaleUpPods) per policy period; scale-down only after its
  stabilisation window (the highest wish over the window wins); a new pod takes `startup` seconds to
  take work (scheduled, image pulled, Celery connected; a new node would add minutes, not modelled).

Baseline in the same run: the CPU HPA's drain time; the ratio is KEDA's drain time over it.
Writes results/drain.json and results/drain.png (backlog and replicas over time for both).

The figure docs/observability.md shows is committed (docs/images/drain.svg): drawn from the recorded
run's worker figures (`--recorded`, not this machine's results/worker.json) at the default burst and
stack, with no date and fixed SVG ids, so redrawing it gives the same bytes:

    python -m bench.drain --recorded --figure docs/images/drain.svg

tests/bench/test_drain.py fails when the committed figure is not what that command draws now (after a
change to the model or to the production stack's worker bounds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from bench._common import ROOT, print_table, results_dir, write_result

PROJECT = "ai-agents-platform"
STEP_S = 0.5
# The HPA controller's default --horizontal-pod-autoscaler-sync-period and tolerance.
HPA_SYNC_S = 15.0
HPA_TOLERANCE = 0.1
# The worker pod's CPU request (components/workloads/pods.py; tests/bench/test_drain.py keeps them equal).
WORKER_CPU_REQUEST_CORES = 1.0
# The recorded `make bench` run (docs/performance.md, 2026-11-29): 256 jobs through one worker at
# concurrency 32 in 19.9 s = 12.86 jobs/s, 26.8 ms of CPU per job; fake LLM 2 s.
RECORDED_WORKER = {"concurrency": 32, "throughput_jobs_per_s": 12.86, "worker_cpu_ms_per_job": 26.8}
# The burst docs/observability.md's figure shows (also the command line's defaults), and where it lives.
DEFAULT_JOBS = 5000
DEFAULT_STACK = "production"
DEFAULT_STARTUP_S = 30.0
DOCS_FIGURE = ROOT / "docs" / "images" / "drain.svg"
# SVG element ids are hashes salted with this (matplotlib's default salt is random per process).
SVG_HASH_SALT = "bench.drain"


@dataclass(frozen=True)
class Worker:
    """One worker replica, from bench/worker.py's measurement."""

    concurrency: int
    job_seconds: float
    cpu_seconds_per_job: float
    cpu_request_cores: float = WORKER_CPU_REQUEST_CORES

    @property
    def jobs_per_second(self) -> float:
        return self.concurrency / self.job_seconds


@dataclass(frozen=True)
class Scaling:
    """The stack's bounds and the autoscalers' settings."""

    min_replicas: int
    max_replicas: int
    target_per_replica: int
    polling_interval_s: float
    target_cpu_percent: int
    startup_s: float = 30.0
    scale_up_percent: int = 100
    scale_up_pods: int = 4
    policy_period_s: float = 60.0
    scale_down_stabilization_s: float = 300.0


@dataclass(frozen=True)
class Sample:
    t: float
    queue: int  # waiting in Redis
    backlog: int  # waiting + in progress
    replicas: int  # pods (starting or ready)
    ready: int


@dataclass(frozen=True)
class Run:
    name: str
    drain_s: float  # when the last job finished
    peak_replicas: int
    samples: list[Sample]


def bounded(replicas: int, scaling: Scaling) -> int:
    return max(scaling.min_replicas, min(scaling.max_replicas, replicas))


def keda_queue_replicas(queue: int, scaling: Scaling) -> int:
    """KEDA's Redis list scaler (an AverageValue metric): ceil(length / listLength), bounded."""
    return bounded(math.ceil(queue / scaling.target_per_replica), scaling)


def cpu_utilisation_percent(busy_threads: int, ready: int, worker: Worker) -> float:
    """Mean CPU of the ready pods as a percentage of their request: busy threads x CPU per job-second."""
    if ready == 0:
        return 0.0
    cores = busy_threads * worker.cpu_seconds_per_job / worker.job_seconds
    return 100 * cores / (ready * worker.cpu_request_cores)


def cpu_replicas(current: int, utilisation: float, scaling: Scaling) -> int:
    """The HPA's rule for a Utilization target: ceil(current x util / target), nothing within tolerance."""
    ratio = utilisation / scaling.target_cpu_percent
    if abs(ratio - 1) <= HPA_TOLERANCE:
        return bounded(current, scaling)
    return bounded(math.ceil(current * ratio), scaling)


def scale_up_limit(replicas_period_ago: int, scaling: Scaling) -> int:
    """The most replicas the behaviour's scale-up policies allow (selectPolicy Max)."""
    return max(
        math.ceil(replicas_period_ago * (1 + scaling.scale_up_percent / 100)),
        replicas_period_ago + scaling.scale_up_pods,
    )


Wish = Callable[[int, int, int, float], int]  # (queue, current, ready, utilisation) -> replicas


def simulate(name: str, jobs: int, worker: Worker, scaling: Scaling, wish: Wish, interval_s: float) -> Run:
    """Step the burst through: threads finish and take jobs, the autoscaler decides every interval."""
    step = 0
    waiting = jobs
    finishing: list[float] = []  # one finish time per busy thread
    pods = [0.0] * scaling.min_replicas  # ready-at time per pod
    wishes: list[tuple[float, int]] = []
    history: list[tuple[float, int]] = [(0.0, len(pods))]
    next_decision = 0.0
    samples: list[Sample] = []
    while True:
        t = step * STEP_S
        finishing = [f for f in finishing if f > t + 1e-9]
        ready = sum(1 for r in pods if r <= t + 1e-9)
        if t + 1e-9 >= next_decision:
            utilisation = cpu_utilisation_percent(len(finishing), ready, worker)
            wishes.append((t, wish(waiting, len(pods), ready, utilisation)))
            # Down only to the highest wish of the stabilisation window; up at once, within the policies.
            window = [w for at, w in wishes if at >= t - scaling.scale_down_stabilization_s]
            target = window[-1] if window[-1] >= len(pods) else min(len(pods), max(window))
            period_ago = min((n for at, n in history if at >= t - scaling.policy_period_s), default=len(pods))
            target = min(target, scale_up_limit(period_ago, scaling))
            if target > len(pods):
                pods += [t + scaling.startup_s] * (target - len(pods))
            elif target < len(pods):
                pods = sorted(pods)[:target]
            history.append((t, len(pods)))
            next_decision += interval_s
        free = ready * worker.concurrency - len(finishing)
        taken = max(0, min(free, waiting))
        finishing += [t + worker.job_seconds] * taken
        waiting -= taken
        samples.append(Sample(t, waiting, waiting + len(finishing), len(pods), ready))
        if waiting == 0 and not finishing:
            return Run(name, t, max(s.replicas for s in samples), samples)
        step += 1


def keda_run(jobs: int, worker: Worker, scaling: Scaling) -> Run:
    def wish(queue: int, current: int, _ready: int, utilisation: float) -> int:
        return max(keda_queue_replicas(queue, scaling), cpu_replicas(current, utilisation, scaling))

    return simulate("KEDA (queue length)", jobs, worker, scaling, wish, scaling.polling_interval_s)


def cpu_run(jobs: int, worker: Worker, scaling: Scaling) -> Run:
    def wish(_queue: int, current: int, _ready: int, utilisation: float) -> int:
        return cpu_replicas(current, utilisation, scaling)

    return simulate("CPU HPA", jobs, worker, scaling, wish, HPA_SYNC_S)


def measured_worker(
    concurrency: int, job_seconds: float | None, recorded: bool = False
) -> tuple[Worker, str]:
    """The per-thread job time and CPU from results/worker.json, or from the recorded run (always
    with ``recorded``: the same figures on every machine)."""
    path = results_dir() / "worker.json"
    if path.exists() and not recorded:
        data: dict[str, Any] = json.loads(path.read_text())
        source = f"measured: {path.name}"
    else:
        data, source = RECORDED_WORKER, "recorded run, docs/performance.md"
    seconds = data["concurrency"] / data["throughput_jobs_per_s"]
    return Worker(concurrency, job_seconds or seconds, data["worker_cpu_ms_per_job"] / 1000), source


def stack_scaling(stack: str, startup_s: float) -> tuple[Scaling, int]:
    """The worker's bounds, behaviour and KEDA settings from the stack file (defaults as the config's)."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    app = doc["config"][f"{PROJECT}:app"]
    worker, queue = app["worker"], app.get("queueScaling", {})
    scaling = Scaling(
        min_replicas=worker["minReplicas"],
        max_replicas=worker["maxReplicas"],
        target_per_replica=queue.get("targetPerReplica", 32),
        polling_interval_s=queue.get("pollingIntervalSeconds", 15),
        target_cpu_percent=worker.get("targetCpuPercent", 70),
        startup_s=startup_s,
        scale_up_percent=worker.get("scaleUpPercent", 100),
        scale_up_pods=worker.get("scaleUpPods", 4),
        policy_period_s=worker.get("policyPeriodSeconds", 60),
        scale_down_stabilization_s=worker.get("scaleDownStabilizationSeconds", 300),
    )
    return scaling, app.get("workerConcurrency", 16)


@dataclass(frozen=True)
class Model:
    """One burst drained under both autoscalers, with what it was computed from."""

    jobs: int
    stack: str
    scaling: Scaling
    worker: Worker
    worker_source: str
    keda: Run
    cpu: Run

    @property
    def title(self) -> str:
        return (
            f"draining a burst of {self.jobs} jobs: {self.stack} bounds "
            f"{self.scaling.min_replicas}-{self.scaling.max_replicas} workers x {self.worker.concurrency} "
            f"threads, {self.worker.job_seconds:.2f} s per job"
        )

    def fingerprint(self) -> str:
        """A digest of the inputs and every sample of both runs: what the figure is drawn from."""
        data: dict[str, Any] = {
            "jobs": self.jobs,
            "worker": asdict(self.worker),
            "scaling": asdict(self.scaling),
            "runs": [asdict(run) for run in (self.keda, self.cpu)],
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def model(
    jobs: int = DEFAULT_JOBS,
    stack: str = DEFAULT_STACK,
    startup_s: float = DEFAULT_STARTUP_S,
    job_seconds: float | None = None,
    recorded: bool = False,
) -> Model:
    scaling, concurrency = stack_scaling(stack, startup_s)
    worker, source = measured_worker(concurrency, job_seconds, recorded)
    return Model(
        jobs, stack, scaling, worker, source, keda_run(jobs, worker, scaling), cpu_run(jobs, worker, scaling)
    )


def docs_model() -> Model:
    """The burst docs/observability.md's figure shows: the defaults, the recorded worker figures."""
    return model(recorded=True)


def plot(result: Model, path: Path) -> None:
    """Backlog and ready workers over time for both runs; PNG or SVG by the path's suffix, with no
    date or random ids in the file, so the same model always gives the same bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    with plt.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, height_ratios=[2, 1])
        for run in (result.keda, result.cpu):
            minutes = [s.t / 60 for s in run.samples]
            (line,) = top.plot(
                minutes, [s.backlog for s in run.samples], label=f"{run.name}: {run.drain_s / 60:.1f} min"
            )
            bottom.step(
                minutes, [s.ready for s in run.samples], where="post", color=line.get_color(), label=run.name
            )
        top.set_ylabel("jobs not finished")
        top.set_title(result.title, fontsize=10)
        top.set_ylim(bottom=0)
        top.legend(fontsize=8)
        bottom.set_ylabel("ready workers")
        bottom.set_xlabel("minutes after the burst")
        bottom.set_ylim(bottom=0)
        bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        description = f"bench.drain model sha256:{result.fingerprint()} ({result.worker_source})"
        metadata: dict[str, str | None] = (
            {"Date": None, "Description": description}
            if path.suffix == ".svg"
            else {"Software": None, "Description": description}
        )
        fig.savefig(path, dpi=100, metadata=metadata)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small burst (for make test)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--stack", default=DEFAULT_STACK)
    parser.add_argument(
        "--startup", type=float, default=DEFAULT_STARTUP_S, help="seconds before a new pod takes work"
    )
    parser.add_argument("--job-seconds", type=float, default=None, help="override the measured time per job")
    parser.add_argument(
        "--recorded",
        action="store_true",
        help="the recorded run's worker figures, not results/worker.json (the committed figure's inputs)",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        default=None,
        help=f"also draw the figure here, .svg or .png (the docs' one: {DOCS_FIGURE.relative_to(ROOT)})",
    )
    args = parser.parse_args()
    jobs = 500 if args.quick else args.jobs

    result_model = model(jobs, args.stack, args.startup, args.job_seconds, args.recorded)
    scaling, worker, source = result_model.scaling, result_model.worker, result_model.worker_source
    concurrency, keda, cpu = worker.concurrency, result_model.keda, result_model.cpu
    ratio = keda.drain_s / cpu.drain_s
    busy_cpu = cpu_utilisation_percent(worker.concurrency, 1, worker)
    at_max = replace(scaling, min_replicas=scaling.max_replicas)
    floor_s = cpu_run(jobs, worker, at_max).drain_s  # every replica ready from the start

    print_table(
        f"drain: {jobs} jobs queued at once, {args.stack} bounds {scaling.min_replicas}-{scaling.max_replicas} "
        f"workers x {concurrency} threads, {worker.job_seconds:.2f} s per job ({source})",
        ["autoscaler", "drain time", "peak replicas", "ratio to CPU HPA"],
        [
            [
                run.name,
                f"{run.drain_s / 60:.1f} min ({run.drain_s:.0f} s)",
                str(run.peak_replicas),
                f"{run.drain_s / cpu.drain_s:.2f}",
            ]
            for run in (keda, cpu)
        ]
        + [
            [
                "max replicas from the start (floor)",
                f"{floor_s / 60:.1f} min ({floor_s:.0f} s)",
                str(scaling.max_replicas),
                f"{floor_s / cpu.drain_s:.2f}",
            ]
        ],
    )
    print(
        f"a fully busy worker uses {busy_cpu:.0f} % of its CPU request (target {scaling.target_cpu_percent} %): "
        f"the CPU HPA never scales out; ratio KEDA / CPU HPA = {ratio:.2f}"
    )
    png = results_dir() / "drain.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(result_model, png)
    if args.figure is not None:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        plot(result_model, args.figure)
        print(f"drew {args.figure}")
    result = {
        "jobs": jobs,
        "stack": args.stack,
        "worker": asdict(worker),
        "worker_source": source,
        "scaling": asdict(scaling),
        "busy_worker_cpu_percent": busy_cpu,
        "keda": {"drain_s": keda.drain_s, "peak_replicas": keda.peak_replicas},
        "cpu_hpa": {"drain_s": cpu.drain_s, "peak_replicas": cpu.peak_replicas},
        "max_replicas_floor_s": floor_s,
        "ratio": ratio,
        "quick": args.quick,
    }
    print(f"wrote {write_result('drain', result)} and {png}")


if __name__ == "__main__":
    main()
