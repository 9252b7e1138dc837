"""What the images do: each Dockerfile executed without an engine, then its command run.

1. tests/containers/executor.py executes every instruction of the three Dockerfiles in scratch roots:
   COPY from the build context as .dockerignore leaves it, the build stage's `pip wheel`/`pip install`
   for real, `groupadd`/`useradd` against the image's /etc, `COPY --from=build`, ENV, WORKDIR, USER.
   The base image is stood in by the host's OS and Python runtime (see the executor's docstring).
2. Each image's ENTRYPOINT + CMD then runs as the image's USER (UID/GID 10001 in a user namespace, no
   capabilities), with the image's ENV and WORKDIR, on its root mounted read-only with a tmpfs /tmp,
   against the harness's PostgreSQL, Redis, moto and fake upstreams. Only `--host`/`--port` of the API are
   changed (loopback, a free port), and the deployment's environment is added, as `docker run -e` does.

Nothing here needs root: bubblewrap creates the namespaces as an ordinary user. Where it cannot (bwrap
missing, user namespaces disabled), every test fails saying how to fix it; a run that knowingly cannot
opts out with IMAGE_RUN_TESTS=skip, and the skip reason (shown by `-ra`) says so.

Where RUN gets its packages: by default the dependency wheels are re-packed from this virtualenv
(tests/containers/images.py) and offered to pip read-only (offline, the versions every other test ran);
IMAGE_BUILD_NETWORK=pypi lets pip download from PyPI as `docker build` does (CI). ADD's URL (the RDS CA
bundle) is downloaded and its checksum verified; where the host cannot reach it, a stand-in file is used
with a warning, unless IMAGE_BUILD_DOWNLOADS=require (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from components.images import IMAGE_NAMES
from components.workloads.contract import RUN_AS
from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.moto_server import MotoServer
from harness.net import free_port
from harness.postgres import PostgresServer
from harness.processes import ServiceProcess
from harness.redis_server import RedisServer
from harness.stack import Stack
from tests.containers.executor import (
    Build,
    Image,
    fetch_url,
    locked,
    prune,
    sandbox_argv,
    sandbox_problem,
)
from tests.containers.images import DOCKER_DIR, REPO, build_wheelhouse

OPT_OUT_VARIABLE = "IMAGE_RUN_TESTS"
MISSING = sandbox_problem()
OPTED_OUT = os.environ.get(OPT_OUT_VARIABLE) == "skip"
# Opted out: skipped before any server starts. Not opted out: `images` fails every test with the reason.
pytestmark = [
    pytest.mark.skipif(
        MISSING is not None and OPTED_OUT, reason=f"opted out ({OPT_OUT_VARIABLE}=skip): {MISSING}"
    ),
    # The first test also builds the three images (the build stage's pip: minutes on a busy machine).
    pytest.mark.timeout(900),
]
ALEMBIC_INI = REPO / "app" / "db" / "alembic.ini"


def _download(url: str, checksum: str | None) -> bytes:
    """ADD's download; a host that cannot reach the URL gets a visible stand-in unless told to require it."""
    try:
        return fetch_url(url, checksum)
    except (urllib.error.URLError, OSError) as error:
        if os.environ.get("IMAGE_BUILD_DOWNLOADS") == "require":
            raise
        warnings.warn(f"ADD {url}: not reachable here ({error}); a stand-in file, checksum not verified",
                      stacklevel=1)  # fmt: skip
        return b"# stand-in: the download was not reachable when this image was built\n"


def build_cache(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytest's cache directory (stages are keyed by content, so they outlive a session), else its tmp."""
    cache = getattr(config, "cache", None)
    return cache.mkdir("image-build") if cache is not None else tmp_path_factory.mktemp("image-build")


@pytest.fixture(scope="module")
def images(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image]:
    if MISSING is not None:
        pytest.fail(f"{MISSING}; or set {OPT_OUT_VARIABLE}=skip to run without these tests", pytrace=False)
    cache = build_cache(request.config, tmp_path_factory)
    wheelhouse = None
    if os.environ.get("IMAGE_BUILD_NETWORK") != "pypi":
        wheelhouse = build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    built: dict[str, Image] = {}
    used: set[str] = set()
    context_key = ""
    with locked(cache / "lock"):  # parallel workers wait for one build instead of doing it twice
        for name in IMAGE_NAMES:
            build = Build(
                DOCKER_DIR / f"{name}.Dockerfile", REPO, cache, wheelhouse=wheelhouse, fetch=_download
            )
            built[name] = build.build()
            used |= build.used
            context_key = build.context_key
        prune(cache, used, context_key)  # a stage is ~200 MB: keep only the ones this checkout builds
    return built


@dataclass(frozen=True)
class Run:
    """How to start an image's command: `docker run --read-only --tmpfs /tmp -e ... image command`."""

    image: Image

    def argv(self, command: list[str], env: Mapping[str, str], info_fd: int | None = None) -> list[str]:
        uid, gid = self.image.ids()
        # The deployment's settings only: what the harness inherited from this process (PATH, HOME, ...)
        # is not the container's business, as `docker run -e` passes only what it is given.
        given = {key: value for key, value in env.items() if os.environ.get(key) != value}
        return sandbox_argv(
            self.image.root, command, uid=uid, gid=gid, env={**self.image.env, **given},
            workdir=self.image.workdir, read_only=True, info_fd=info_fd,
        )  # fmt: skip


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
    """A long-running image command (harness.processes). bwrap does not forward signals: `stop` sends
    SIGTERM to the command itself (its host pid from bwrap's --info-fd), as the kubelet signals PID 1."""

    def __init__(
        self, name: str, run: Run, command: list[str], env: Mapping[str, str], ready: Callable[[], bool]
    ) -> None:
        super().__init__(name, command, env)
        self.run = run
        self.command = command
        self._ready = ready
        self.child_pid: int | None = None

    def start(self) -> None:
        self._log_offset = self.log_path.stat().st_size
        read_end, write_end = os.pipe()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.run.argv(self.command, self.env, info_fd=write_end), env={}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(write_end,),
            )  # fmt: skip
        os.close(write_end)
        received = b""
        while not received.rstrip().endswith(b"}"):  # one JSON object, written once the child exists
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            received += chunk
        os.close(read_end)
        self.child_pid = int(json.loads(received)["child-pid"])

    def stop(self, timeout: float = 20) -> int | None:
        if self.process is not None and self.process.poll() is None and self.child_pid is not None:
            os.kill(self.child_pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)  # bwrap exits with the command's status
            except subprocess.TimeoutExpired:
                self.kill()
        return super().stop(timeout)

    def is_ready(self) -> bool:
        return self._ready()


def _run(
    images: dict[str, Image], name: str, command: list[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        Run(images[name]).argv(command, env), env={}, capture_output=True, text=True, timeout=120, check=False
    )


def test_sandbox_is_the_images_user_and_cannot_write_the_image(images: dict[str, Image]) -> None:
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
    result = _run(images, "api", ["python", "-c", script], {})
    assert result.returncode == 0, result.stderr
    ids, location, dont_write, *rest = result.stdout.splitlines()
    uid, gid, groups = ids.split(" ", 2)
    assert (uid, gid) == (str(RUN_AS), str(RUN_AS))
    # No supplementary group but the image's own (an unprivileged namespace cannot drop the caller's
    # groups; they show as the mapped GID or as the overflow GID 65534, never as root's).
    assert set(json.loads(groups)) <= {RUN_AS, 65534}
    assert location.startswith("/opt/venv/lib/python3.11/site-packages/app"), "the installed wheel"
    assert dont_write == "True"
    assert rest == [], "nothing in the image is writable"


def test_migrations_command_reaches_head(images: dict[str, Image], image_stack: Stack) -> None:
    command = images["migrations"].command
    result = _run(images, "migrations", command, image_stack.env)
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
    again = _run(images, "migrations", command, image_stack.env)
    assert again.returncode == 0, again.stdout + again.stderr


def test_invalid_configuration_exits_2_with_one_line(images: dict[str, Image]) -> None:
    result = _run(images, "migrations", images["migrations"].command, {"APP_ENV": "production"})
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr


def test_api_and_worker_commands_serve_and_process_a_job(
    images: dict[str, Image], image_stack: Stack
) -> None:
    if not image_stack.tenants:
        image_stack.migrate()  # idempotent; normally done by test_migrations_command_reaches_head
    tenant = image_stack.add_tenant("image-tenant")
    port = free_port()
    api_command = images["api"].command
    api_command[api_command.index("--host") + 1] = "127.0.0.1"
    api_command[api_command.index("--port") + 1] = str(port)
    base = f"http://127.0.0.1:{port}"

    def api_ready() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    api = ImageProcess("image-api", Run(images["api"]), api_command, image_stack.env, api_ready)
    metrics_port = free_port()
    worker_env = {**image_stack.env, "WORKER_METRICS_PORT": str(metrics_port)}
    worker = ImageProcess(
        "image-worker", Run(images["worker"]), images["worker"].command, worker_env,
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
    # bwrap exits with its child's status: 128 + SIGTERM when uvicorn re-raises it, as `docker stop` shows.
    assert api_code in {0, 128 + signal.SIGTERM}, api.logs()[-2000:]
    assert "Application shutdown complete." in api.current_logs()
    assert worker_code in {0, 128 + signal.SIGTERM}, (worker_code, worker.logs()[-2000:])
    assert "warm shutdown" in worker.current_logs().lower(), worker.logs()[-2000:]
