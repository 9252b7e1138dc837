"""The Dockerfile executor (tests/containers/executor.py) fails where `docker build` would, naming the line.

The real Dockerfiles, mutated in memory (a misspelt COPY source, a misspelt wheel file name, a source
.dockerignore keeps out), and a small Dockerfile of its own for what the images do not use. Like the
image-run tests these need bubblewrap and user namespaces, and fail saying so unless opted out.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.containers.executor import Build, BuildError, sandbox_argv, sandbox_problem
from tests.containers.images import DOCKER_DIR, REPO, build_wheelhouse

MISSING = sandbox_problem()
pytestmark = pytest.mark.skipif(
    MISSING is not None and os.environ.get("IMAGE_RUN_TESTS") == "skip",
    reason=f"opted out (IMAGE_RUN_TESTS=skip): {MISSING}",
)
API = DOCKER_DIR / "api.Dockerfile"


@pytest.fixture(autouse=True)
def _sandbox() -> None:
    if MISSING is not None:
        pytest.fail(f"{MISSING}; or set IMAGE_RUN_TESTS=skip to run without these tests", pytrace=False)


def _mutated(old: str, new: str) -> str:
    text = API.read_text()
    assert text.count(old) == 1, f"the mutation's target moved: {old!r}"
    return text.replace(old, new)


def _line(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_a_misspelt_copy_source_fails_naming_the_instruction(tmp_path: Path) -> None:
    text = _mutated("COPY app ./app", "COPY ap ./app")
    with pytest.raises(BuildError) as failure:
        Build(API, REPO, tmp_path, text=text).build(target="build")
    message = str(failure.value)
    assert message.startswith(f"api.Dockerfile:{_line(text, 'COPY ap ./app')}: COPY ap ./app: ")
    assert '"ap" not found in the build context' in message


def test_a_source_dockerignore_keeps_out_is_not_found(tmp_path: Path) -> None:
    text = _mutated("COPY app ./app", "COPY app ./app\nCOPY app/docker/api.Dockerfile /src/")
    with pytest.raises(
        BuildError, match=r"api\.Dockerfile:\d+: COPY app/docker/api\.Dockerfile /src/: .*not found"
    ):
        Build(API, REPO, tmp_path, text=text).build(target="build")


@pytest.mark.timeout(600)  # the step's `pip wheel` runs for real before the misspelt install fails
def test_a_misspelt_wheel_file_name_fails_the_run_step(tmp_path: Path) -> None:
    """The build stage's RUN really runs: pip cannot find the misspelt wheel, the step exits non-zero."""
    text = _mutated("/wheels/ai_agents_platform-*.whl", "/wheels/ai_agent_platform-*.whl")
    wheelhouse = build_wheelhouse(tmp_path / "wheelhouse")
    with pytest.raises(BuildError) as failure:
        Build(API, REPO, tmp_path / "cache", wheelhouse=wheelhouse, text=text).build(target="build")
    message = str(failure.value)
    assert message.startswith(f"api.Dockerfile:{_line(text, 'RUN /opt/venv/bin/pip wheel')}: RUN ")
    assert "did not complete successfully: exit code 1" in message
    assert "ai_agent_platform-*.whl" in message  # pip's own complaint, quoted in the error


SMALL = """\
ARG BASE=python:3.11-slim
FROM ${BASE} AS first
ARG GREETING=hello
ENV WHERE=/work TARGET=${GREETING}-file
WORKDIR ${WHERE}
COPY --chown=nobody data/ ./data/
RUN id -u > uid && echo "${GREETING} $(cat data/kept.txt)" > "${TARGET}" && useradd --uid 10001 app
FROM python:3.11-slim
COPY --from=first --chmod=0444 /work/hello-file /opt/
USER app:nogroup
CMD ["cat", "/opt/hello-file"]
"""


@pytest.fixture
def small_context(tmp_path: Path) -> Path:
    context = tmp_path / "context"
    (context / "data").mkdir(parents=True)
    (context / "data" / "kept.txt").write_text("world")
    (context / "data" / "secret.env").write_text("TOKEN=x")
    (context / ".dockerignore").write_text("# comments are not patterns\n**/*.env\n")
    (context / "Dockerfile").write_text(SMALL)
    return context


def test_stages_args_env_copy_run_and_user(small_context: Path, tmp_path: Path) -> None:
    first = Build(small_context / "Dockerfile", small_context, tmp_path / "cache").build(target="first")
    assert (first.root / "work" / "uid").read_text() == "0\n", "RUN runs as the stage's user (root)"
    assert (first.root / "work" / "hello-file").read_text() == "hello world\n"
    assert (first.root / "work" / "data" / "kept.txt").is_file()
    assert not (first.root / "work" / "data" / "secret.env").exists(), ".dockerignore keeps it out"
    assert first.owners == {"./data/": "nobody"}
    final = Build(small_context / "Dockerfile", small_context, tmp_path / "cache").build()
    assert (final.root / "opt" / "hello-file").stat().st_mode & 0o777 == 0o444
    assert not (final.root / "work").exists(), "a stage from the base starts empty"
    # `useradd` ran in the first stage only: the final stage's USER is unknown to its /etc/passwd.
    with pytest.raises(BuildError, match="unable to find user app"):
        final.ids()


def test_build_args_override_and_other_pythons_are_refused(small_context: Path, tmp_path: Path) -> None:
    built = Build(
        small_context / "Dockerfile", small_context, tmp_path / "a", build_args={"GREETING": "bye"}
    ).build(target="first")
    assert (built.root / "work" / "bye-file").read_text() == "bye world\n"
    with pytest.raises(BuildError, match=r"Dockerfile:2: FROM .*the base is Python 3\.12"):
        Build(
            small_context / "Dockerfile",
            small_context,
            tmp_path / "b",
            build_args={"BASE": "python:3.12-slim"},
        ).build()


def test_the_final_root_is_read_only_to_the_images_user(small_context: Path, tmp_path: Path) -> None:
    import subprocess

    image = Build(small_context / "Dockerfile", small_context, tmp_path / "cache").build(target="first")
    argv = sandbox_argv(
        image.root, ["sh", "-c", "id -u; touch /work/x || echo refused; touch /tmp/x && echo tmp"],
        uid=10001, gid=10001, env=image.env, workdir=image.workdir, read_only=True,
    )  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.split() == ["10001", "refused", "tmp"], result.stderr
