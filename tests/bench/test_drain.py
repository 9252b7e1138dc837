"""The drain model's arithmetic (bench/drain.py), against cases worked out by hand: no timing. And the
figure docs/observability.md shows: committed, and what the bench draws now from the recorded inputs."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import matplotlib

from bench._common import ROOT
from bench.drain import (
    DOCS_FIGURE,
    WORKER_CPU_REQUEST_CORES,
    Scaling,
    Worker,
    cpu_replicas,
    cpu_run,
    cpu_utilisation_percent,
    docs_model,
    keda_queue_replicas,
    keda_run,
    plot,
    scale_up_limit,
    stack_scaling,
)
from components.workloads.pods import POD_RESOURCES

SCALING = Scaling(
    min_replicas=1,
    max_replicas=10,
    target_per_replica=32,
    polling_interval_s=15,
    target_cpu_percent=70,
    startup_s=30,
)
# 16 threads, 2 s per job: 8 jobs/s per replica; 40 ms of CPU per job: 0.32 cores when all are busy.
WORKER = Worker(concurrency=16, job_seconds=2.0, cpu_seconds_per_job=0.04)


def test_keda_wants_one_replica_per_target_of_waiting_jobs_within_the_bounds() -> None:
    assert keda_queue_replicas(100, SCALING) == 4  # ceil(100 / 32)
    assert keda_queue_replicas(96, SCALING) == 3
    assert keda_queue_replicas(0, SCALING) == 1  # minReplicas
    assert keda_queue_replicas(5000, SCALING) == 10  # maxReplicas


def test_cpu_hpa_follows_utilisation_over_target_outside_the_tolerance() -> None:
    # 16 busy threads x 0.04 s CPU per 2 s job = 0.32 cores on one 1-core pod: 32 %.
    assert cpu_utilisation_percent(16, 1, WORKER) == 32.0
    assert cpu_utilisation_percent(16, 2, WORKER) == 16.0
    assert cpu_replicas(3, 32.0, SCALING) == 2  # ceil(3 x 32 / 70)
    assert cpu_replicas(3, 140.0, SCALING) == 6
    assert cpu_replicas(3, 75.0, SCALING) == 3  # 75 / 70 is within the 10 % tolerance


def test_scale_up_is_limited_by_the_larger_policy() -> None:
    assert scale_up_limit(3, SCALING) == 7  # +4 pods beats +100 %
    assert scale_up_limit(6, SCALING) == 12  # +100 % beats +4 pods


def test_a_burst_one_replica_can_hold_drains_in_whole_waves() -> None:
    """64 jobs, one replica of 16 threads, 2 s each: 4 waves, the last job done at 8 s."""
    fixed = replace(SCALING, max_replicas=1)
    for run in (keda_run(64, WORKER, fixed), cpu_run(64, WORKER, fixed)):
        assert run.drain_s == 8.0, run.name
        assert run.peak_replicas == 1
        assert run.samples[0].queue == 64 - 16 and run.samples[0].backlog == 64


def test_keda_adds_replicas_that_take_work_after_start_up() -> None:
    """320 jobs from 1 replica: KEDA wants ceil(304 / 32) = 10, the policies allow 1 + 4 = 5 at once.
    Until 30 s one replica drains 8 jobs/s (15 waves of 16 = 240 jobs by 30 s); then 5 replicas take
    the remaining 80 in one wave: the last finishes at 32 s. The CPU HPA (32 % < 70 %) stays at 1:
    320 / 16 = 20 waves = 40 s."""
    keda, cpu = keda_run(320, WORKER, SCALING), cpu_run(320, WORKER, SCALING)
    assert keda.peak_replicas == 5 and keda.drain_s == 32.0
    assert cpu.peak_replicas == 1 and cpu.drain_s == 40.0


def test_the_model_reads_the_stack_and_the_worker_pod_request() -> None:
    scaling, concurrency = stack_scaling("production", startup_s=30)
    assert scaling.min_replicas >= 1 and scaling.max_replicas >= scaling.min_replicas
    assert concurrency >= 1
    request = POD_RESOURCES["worker"].cpu
    cores = int(request[:-1]) / 1000 if request.endswith("m") else float(request)
    assert cores == WORKER_CPU_REQUEST_CORES


REGENERATE = "redraw it: python -m bench.drain --recorded --figure docs/images/drain.svg"


def test_the_docs_show_the_committed_figure() -> None:
    assert DOCS_FIGURE.is_file(), REGENERATE
    for doc in ("observability.md", "performance.md"):
        text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        assert f"](images/{DOCS_FIGURE.name})" in text, doc
    assert "bench/results/drain.png)" not in (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")


def test_the_committed_figure_is_what_the_bench_draws_now(tmp_path: Path) -> None:
    """The figure records a digest of the model it was drawn from (inputs and every sample): it must be
    the model the bench computes now, at the production stack's current bounds. Drawn by the same
    matplotlib release, the bytes must match too (another release draws the same data differently)."""
    committed = DOCS_FIGURE.read_text(encoding="utf-8")
    expected = docs_model()
    assert expected.worker_source.startswith("recorded run")
    digest = re.search(r"bench\.drain model sha256:([0-9a-f]{64})", committed)
    assert digest is not None and digest[1] == expected.fingerprint(), REGENERATE
    drawn_by = re.search(r"<dc:title>Matplotlib v([^,<]+),", committed)
    assert drawn_by is not None
    if drawn_by[1] == matplotlib.__version__:
        plot(expected, tmp_path / DOCS_FIGURE.name)
        assert (tmp_path / DOCS_FIGURE.name).read_bytes() == DOCS_FIGURE.read_bytes(), REGENERATE


def test_the_figure_digest_covers_the_samples() -> None:
    """A different burst, or the same burst at other bounds, gives another digest."""
    model = docs_model()
    assert replace(model, jobs=model.jobs + 1).fingerprint() != model.fingerprint()
    slower = replace(model.keda, samples=model.keda.samples[:-1])
    assert replace(model, keda=slower).fingerprint() != model.fingerprint()
