"""The three Dockerfiles, parsed (dockerfile-parse) and linted (hadolint): the image rules and the
contract with components/images.py (paths, labels) and components/workloads/ (user, ports, commands)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from components.images import IMAGE_NAMES, dockerfile_path
from components.workloads.contract import (
    API_KEEP_ALIVE_SECONDS,
    API_PORT,
    API_SHUTDOWN_SECONDS,
    METRICS_PORT,
    RDS_CA_BUNDLE_PATH,
    RUN_AS,
)
from components.workloads.pods import migrations_plan, worker_plan
from tests.containers.images import REPO, Dockerfile, dockerfile, dockerignore_excludes

# The commands of docs/app.md ("Processes"), which the Deployments rely on.
COMMANDS = {
    "api": [
        "uvicorn", "app.api.main:app", "--host", "0.0.0.0", "--port", str(API_PORT), "--proxy-headers",
        "--forwarded-allow-ips=*", "--timeout-graceful-shutdown", str(API_SHUTDOWN_SECONDS),
        "--timeout-keep-alive", str(API_KEEP_ALIVE_SECONDS),
    ],
    "worker": [
        "celery", "-A", "app.worker.celery_app", "worker", "--pool", "threads", "--queues", "enhancements",
        "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ],
    "migrations": ["python", "-m", "app", "migrate"],
}  # fmt: skip
PINNED = re.compile(r"^[a-z0-9./-]+:(?P<tag>[0-9][\w.-]*)@sha256:[0-9a-f]{64}$")
SECRET_NAME = re.compile(r"(secret|password|passwd|token|api_?key|credential|private)", re.IGNORECASE)
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

pytestmark = pytest.mark.parametrize("image", IMAGE_NAMES)


@pytest.fixture
def df(image: str) -> Dockerfile:
    return dockerfile(image)


def test_the_path_the_infrastructure_builds_exists(image: str) -> None:
    assert (REPO / dockerfile_path(image)) == dockerfile(image).path
    assert dockerfile(image).path.is_file()


def test_multi_stage_wheels_built_in_builder_only_environment_copied(df: Dockerfile) -> None:
    assert df.stages >= 2
    last = df.stages - 1
    builder_runs = [i.value for i in df.instructions if i.instruction == "RUN" and i.stage < last]
    assert any("pip wheel" in run for run in builder_runs), "the build stage builds the wheels"
    assert not any("pip" in run for run in df.final("RUN")), "no pip (and no build) in the final stage"
    copies = df.final("COPY")
    assert copies == ["--from=build /opt/venv /opt/venv"], "the final stage copies only the environment"
    # The build stage installs the project wheel offline from the wheels it just built.
    assert any("--no-index --find-links /wheels" in run for run in builder_runs)


def test_base_image_pinned_by_version_and_digest(df: Dockerfile) -> None:
    assert df.parent_images, "FROM resolved"
    for parent in df.parent_images:
        match = PINNED.match(parent)
        assert match, f"{parent} is not pinned by version tag and digest"
    # Every stage shares the one pinned interpreter (the venv's python links into it).
    assert len(set(df.parent_images)) == 1
    # The interpreter the project supports (requires-python), a Debian slim image (it has /bin/sh).
    assert df.parent_images[0].startswith("python:3.11.")
    assert "-slim-" in df.parent_images[0]


def test_non_root_user_matches_the_pods(df: Dockerfile) -> None:
    assert df.final("USER") == [f"{RUN_AS}:{RUN_AS}"], "numeric, so runAsNonRoot can verify it"
    user_runs = " ".join(df.final("RUN"))
    assert f"groupadd --system --gid {RUN_AS}" in user_runs
    assert f"useradd --system --uid {RUN_AS} --gid {RUN_AS}" in user_runs
    # USER comes after everything that needs root.
    final = [i for i in df.instructions if i.stage == df.stages - 1]
    user_at = next(n for n, i in enumerate(final) if i.instruction == "USER")
    assert not any(i.instruction in {"RUN", "COPY", "ADD"} for i in final[user_at:])


def test_no_secrets_in_layers_or_build_args(df: Dockerfile) -> None:
    for name in [*df.args, *df.envs]:
        assert not SECRET_NAME.search(name), f"{name} looks like a secret in ARG/ENV"
    # COPY only, but for a URL whose content BuildKit checks against a pinned checksum (the RDS CA bundle).
    assert all("--checksum=sha256:" in add for add in df.all("ADD")), "ADD unpacks archives and fetches URLs"
    for copy in df.all("COPY"):
        assert ".env" not in copy and "id_rsa" not in copy
        assert "--from=build" in copy or copy.split()[0] in {"pyproject.toml", "app"}
    # What the build context can hold at all (.dockerignore is an allow-list).
    for path in (".env", ".env.local", ".git/config", ".venv/bin/python", "Pulumi.staging.yaml",
                 "harness/stack.py", "build/plan/staging/plan.json", "app/.env", "harness/localrun.py"):  # fmt: skip
        assert dockerignore_excludes(path), f"{path} would be sent to the builder"


def test_python_environment_for_a_read_only_root_filesystem(df: Dockerfile) -> None:
    env = df.envs
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    # Anything that insists on a home or temp dir gets the pod's only writable path.
    assert env["HOME"] == "/tmp"
    assert env["TMPDIR"] == "/tmp"
    assert env["PATH"].startswith("/opt/venv/bin:")
    # The working directory holds no `app` package, so only the installed wheel is importable.
    assert df.final("WORKDIR") == ["/srv"]


def test_exec_form_command_the_workloads_expect(image: str, df: Dockerfile) -> None:
    assert df.exec_form("ENTRYPOINT") is None, "CMD only: a pod's `command` then replaces it cleanly"
    assert df.command == COMMANDS[image]
    assert df.final("STOPSIGNAL") == ["SIGTERM"]
    if image == "migrations":
        # The Job sets `command` itself: identical to the CMD.
        assert list(migrations_plan("img", "arn").command or []) == df.command
    if image == "worker":
        # The liveness probe execs `sh -c "celery -A <same app> inspect ping ..."`.
        probe: Any = worker_plan("img").liveness_probe  # plain values here, not Outputs
        command = list(probe.exec_.command)
        assert command[:2] == ["sh", "-c"]
        assert shlex.split(command[2])[:3] == df.command[:3]


def test_healthcheck_where_meaningful(image: str, df: Dockerfile) -> None:
    (healthcheck,) = df.final("HEALTHCHECK")
    if image == "migrations":
        assert healthcheck == "NONE", "a one-shot job has nothing to probe"
        return
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options and "--retries=" in options
    probe = json.loads(command)
    assert probe[0] == "python"
    expected = f"127.0.0.1:{API_PORT}/health" if image == "api" else "/metrics"
    assert expected in probe[-1]
    if image == "worker":
        assert str(METRICS_PORT) in probe[-1] and "WORKER_METRICS_PORT" in probe[-1]


def test_oci_labels(image: str, df: Dockerfile) -> None:
    labels = df.labels
    assert labels["org.opencontainers.image.title"] == f"ai-agents-{image}"
    assert labels["org.opencontainers.image.version"] == PYPROJECT["project"]["version"]
    assert labels["org.opencontainers.image.revision"] == "unknown"  # ARG default; the build passes it
    assert labels["org.opencontainers.image.source"].startswith("https://github.com/")
    # The labels come from build args, so components/images.py and CI can set them per release.
    raw = " ".join(df.final("LABEL"))
    for arg in ("VERSION", "GIT_SHA", "SOURCE_URL"):
        assert "${" + arg + "}" in raw and arg in df.args


def test_hadolint_clean_and_every_ignore_explained(df: Dockerfile) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(df.path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    for line in df.text.splitlines():
        if "hadolint ignore=" in line:
            assert re.search(r"ignore=[A-Z0-9,]+\s+\S", line), f"ignore without a reason: {line}"


RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"


def test_the_rds_ca_bundle_is_fetched_pinned_where_the_pods_look(df: Dockerfile) -> None:
    """verify-full needs the RDS CA bundle at DATABASE_SSLROOTCERT; BuildKit checks the checksum, so a
    changed (or substituted) bundle fails the build. All three images carry the same pinned bundle."""
    adds = [value.split() for value in df.final("ADD")]
    assert len(adds) == 1, adds
    flags = [word for word in adds[0] if word.startswith("--")]
    assert adds[0][-2:] == [RDS_CA_BUNDLE_URL, RDS_CA_BUNDLE_PATH]
    assert any(re.fullmatch(r"--checksum=sha256:[0-9a-f]{64}", flag) for flag in flags), flags
    assert "--chmod=0444" in flags
    pins = {dockerfile(image).final("ADD")[0] for image in IMAGE_NAMES}
    assert len(pins) == 1, "the three images pin the same bundle (make rds-ca-pin rewrites all three)"
