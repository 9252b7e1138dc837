"""What the images do, done here without an engine.

1. The build context is what .dockerignore lets through; the project wheel is built from it.
2. A fresh virtualenv (no pip, no setuptools: like /opt/venv after the build stage) gets the wheel and
   its run-time dependencies with `pip install --no-index --find-links`. The dependency wheels are
   re-packed from the distributions installed in .venv (tests/containers/images.py), so nothing is
   downloaded, the versions are the ones every other test runs, and a dependency missing from
   pyproject's base set is missing here too (and the processes below fail).
3. Each image's command is taken from its Dockerfile's CMD and run with the Dockerfile's ENV, in an
   empty working directory, as UID/GID 10001 with no capabilities, with the environment and working
   directory mounted read-only (a private mount namespace) and only a /tmp stand-in writable.
   Only `--host`/`--port` of the API are changed (loopback, a free port).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from components.workloads.contract import RUN_AS
from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.moto_server import MotoServer
from harness.net import free_port
from harness.postgres import PostgresServer
from harness.processes import ServiceProcess
from harness.redis_server import RedisServer
from harness.stack import Stack
from tests.containers.images import (
    build_project_wheel,
    copy_build_context,
    dockerfile,
    wheelhouse_from_installed,
)

# These tests need root (to switch to UID 10001) and mount namespaces. Where either is missing they
# fail, saying so, instead of skipping in silence: a CI runner without them would otherwise report
# green having run none of them. A run that knowingly lacks them opts out with IMAGE_RUN_TESTS=skip,
# and the skip reason (shown by `-ra`) says it was opted out.
OPT_OUT_VARIABLE = "IMAGE_RUN_TESTS"


def _missing_capability() -> str | None:
    if os.geteuid() != 0:
        return "the image-run tests need root: switching to UID 10001"
    with tempfile.TemporaryDirectory(prefix="image-probe-") as directory:
        if not _mounts_work(Path(directory)):
            return "no mount namespaces here (needs CAP_SYS_ADMIN): cannot give UID 10001 a read-only image"
    return None


def _mounts_work(directory: Path) -> bool:
    """Bind mounts in a private namespace need CAP_SYS_ADMIN (root on a VM, a privileged container)."""
    remount = f"mount --bind {directory} {directory} && mount -o remount,bind,ro {directory} {directory}"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", remount],
        capture_output=True, check=False, timeout=10,
    )  # fmt: skip
    return probe.returncode == 0


MISSING = _missing_capability()
OPTED_OUT = os.environ.get(OPT_OUT_VARIABLE) == "skip"
# Opted out: skipped before any server starts. Not opted out: `image` fails every test with the reason.
pytestmark = pytest.mark.skipif(
    MISSING is not None and OPTED_OUT, reason=f"opted out ({OPT_OUT_VARIABLE}=skip): {MISSING}"
)
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "app" / "db" / "alembic.ini"


@dataclass
class Image:
    """A stand-in for one built image: the installed environment and how to run its command."""

    root: Path
    venv: Path
    workdir: Path
    tmp: Path
    # Where the base interpreter lives, and the top directory hiding it from other users (e.g. /root
    # for a pyenv build): inside the sandbox that directory is replaced by an empty tmpfs that shows
    # only the interpreter, read-only. None when the interpreter is readable by anyone.
    prefix: Path
    hidden: Path | None

    def env(self, image: str) -> dict[str, str]:
        """The Dockerfile's ENV, with /opt/venv and /tmp pointing at the stand-ins."""
        env: dict[str, str] = {}
        for key, declared in dockerfile(image).envs.items():
            value = declared.replace("/opt/venv", str(self.venv)).replace("${PATH}", "")
            env[key] = str(self.tmp) if value == "/tmp" else value
        env["PATH"] = f"{self.venv}/bin:/usr/bin:/bin"
        return env

    def argv(self, command: list[str]) -> list[str]:
        """`command` as the image's user, without privileges, on a read-only view of the image.

        A private mount namespace (unshare, no fork: the command keeps the process id, so signals
        reach it as they reach PID 1 in a container), then setpriv to UID/GID 10001 with no groups,
        no capabilities and no-new-privs, then exec of the command.
        """
        q = shlex.quote
        steps = ["set -e"]
        if self.hidden is not None:
            stage = self.root / "interpreter"
            steps += [
                f"mount --bind {q(str(self.prefix))} {q(str(stage))}",
                f"mount -t tmpfs -o mode=755,size=1m tmpfs {q(str(self.hidden))}",
                f"mkdir -p {q(str(self.prefix))}",
                f"mount --bind {q(str(stage))} {q(str(self.prefix))}",
            ]
        for directory in (self.venv, self.workdir):
            d = q(str(directory))
            steps += [f"mount --bind {d} {d}", f"mount -o remount,bind,ro {d} {d}"]
        steps.append('exec "$@"')
        drop = [
            "setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--",
        ]  # fmt: skip
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "; ".join(steps), "sh",
                *drop, *command]  # fmt: skip


def _hiding_directory(path: Path) -> Path | None:
    """The topmost ancestor of `path` that other users cannot traverse (mode o-x), if any."""
    for ancestor in reversed(path.parents):
        if not ancestor.stat().st_mode & stat.S_IXOTH:
            return ancestor
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    if MISSING is not None:
        pytest.fail(f"{MISSING}; set {OPT_OUT_VARIABLE}=skip to run without these tests", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="image-"))
    root.chmod(0o755)
    workdir = root / "srv"
    workdir.mkdir()
    context, dist, deps = root / "context", root / "dist", root / "deps"
    context.mkdir()
    copy_build_context(context)
    wheel = build_project_wheel(context, dist)
    wheelhouse_from_installed(deps)
    venv = root / "venv"
    # The same interpreter as .venv (the re-packed wheels were resolved for it), like python:3.11-slim's.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
         "--disable-pip-version-check", "--no-index", "--find-links", str(deps), "--no-compile", str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    tmp = root / "tmp"
    tmp.mkdir()
    os.chown(tmp, RUN_AS, RUN_AS)
    tmp.chmod(0o700)
    (root / "interpreter").mkdir()
    prefix = Path(sys.base_prefix).resolve()
    yield Image(root, venv, workdir, tmp, prefix, _hiding_directory(prefix))
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def image_stack(
    postgres: PostgresServer,
    redis_server: RedisServer,
    moto: MotoServer,
    fake_servicedesk: FakeServiceDesk,
    fake_llm: FakeLLM,
) -> Iterator[Stack]:
    """A database of its own (migrated below by the migrations image, not by the repository's CLI)."""
    stack = Stack.create(postgres, redis_server, moto, fake_servicedesk, fake_llm, database="image_run")
    yield stack
    stack.close()


class ImageProcess(ServiceProcess):
    """A long-running image command (harness.processes), started in the image's working dir."""

    def __init__(
        self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path, ready: Callable[[], bool]
    ) -> None:
        super().__init__(name, argv, env)
        self.log_path.chmod(0o644)
        self.cwd = cwd
        self._ready = ready

    def start(self) -> None:
        self._log_offset = self.log_path.stat().st_size
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def is_ready(self) -> bool:
        return self._ready()


def _run(
    image: Image, name: str, command: list[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        image.argv(command), env={**env, **image.env(name)},
        cwd=image.workdir, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_sandbox_is_the_images_user_and_cannot_write_the_image(image: Image) -> None:
    script = (
        "import os, app, sys\n"
        "print(os.getuid(), os.getgid(), os.getgroups())\n"
        "print(app.__file__)\n"
        "print(sys.dont_write_bytecode)\n"
        "for d in (os.path.dirname(app.__file__), os.getcwd()):\n"
        "    try:\n"
        "        open(os.path.join(d, 'probe'), 'w')\n"
        "        print('writable', d)\n"
        "    except OSError:\n"
        "        pass\n"
        "import tempfile; tempfile.NamedTemporaryFile().close()\n"
    )
    result = _run(image, "api", ["python", "-c", script], {})
    assert result.returncode == 0, result.stderr
    ids, location, dont_write, *rest = result.stdout.splitlines()
    assert ids == f"{RUN_AS} {RUN_AS} []"
    assert location.startswith(str(image.venv)), "imported from the installed wheel, not the checkout"
    assert dont_write == "True"
    assert rest == [], "nothing in the image is writable"


def test_migrations_command_reaches_head(image: Image, image_stack: Stack) -> None:
    command = dockerfile("migrations").command
    result = _run(image, "migrations", command, image_stack.env)
    assert result.returncode == 0, result.stdout + result.stderr
    head = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()
    assert f"schema at revision {head}" in result.stdout
    engine = create_engine(image_stack.env["DATABASE_OWNER_URL"])
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    finally:
        engine.dispose()
    # A second run (the next release with no new revision) is a no-op that still succeeds.
    again = _run(image, "migrations", command, image_stack.env)
    assert again.returncode == 0, again.stdout + again.stderr


def test_invalid_configuration_exits_2_with_one_line(image: Image) -> None:
    result = _run(image, "migrations", dockerfile("migrations").command, {"APP_ENV": "production"})
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr


def test_api_and_worker_commands_serve_and_process_a_job(image: Image, image_stack: Stack) -> None:
    if not image_stack.tenants:
        image_stack.migrate()  # idempotent; normally done by test_migrations_command_reaches_head
    tenant = image_stack.add_tenant("image-tenant")
    port = free_port()
    api_command = dockerfile("api").command
    api_command[api_command.index("--host") + 1] = "127.0.0.1"
    api_command[api_command.index("--port") + 1] = str(port)
    base = f"http://127.0.0.1:{port}"

    def api_ready() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    api = ImageProcess(
        "image-api", image.argv(api_command), {**image_stack.env, **image.env("api")},
        image.workdir, api_ready,
    )  # fmt: skip
    metrics_port = free_port()
    worker_env = {**image_stack.env, **image.env("worker"), "WORKER_METRICS_PORT": str(metrics_port)}
    worker = ImageProcess(
        "image-worker", image.argv(dockerfile("worker").command), worker_env, image.workdir,
        lambda: '"worker_ready"' in worker.current_logs(),
    )  # fmt: skip
    try:
        api.start()
        worker.start()
        api.wait_ready(60)
        worker.wait_ready(60)
        with httpx.Client(base_url=base, timeout=15) as client:
            assert client.get("/health").json() == {"status": "ok"}
            ready = client.get("/api/v1/ready")
            assert ready.status_code == 200, ready.text
            ticket = image_stack.new_ticket(tenant)
            accepted = image_stack.post_webhook(client, tenant, ticket)
            assert accepted.status_code == 202, accepted.text
            job_id = accepted.json()["job_id"]
        job = image_stack.wait_for_job(job_id, timeout=60)
        assert job["status"] == "succeeded", job
        assert image_stack.servicedesk.notes_for(tenant.instance, ticket)
        assert (
            "ai_agents_enhancements_total"
            in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        )
    except BaseException:
        print(api.logs()[-3000:], worker.logs()[-3000:])
        raise
    finally:
        api_code = api.stop(30)
        worker_code = worker.stop(60)
    # SIGTERM to the command itself (what PID 1 gets from `docker stop` / the kubelet): a graceful
    # shutdown, not a kill. uvicorn re-raises the signal once it has drained (exit 143 in a container).
    assert api_code in {0, -signal.SIGTERM}, api.logs()[-2000:]
    assert "Application shutdown complete." in api.current_logs()
    assert worker_code in {0, -signal.SIGTERM}, (worker_code, worker.logs()[-2000:])
    assert "warm shutdown" in worker.current_logs().lower(), worker.logs()[-2000:]
