"""The service's own processes, started exactly as the Kubernetes workloads start them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx

from harness.net import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]

#: Where the processes write their logs. The test session points it at pytest's temporary directory,
#: which keeps the last few runs for a post-mortem and removes older ones; elsewhere (`make run`, the
#: benchmarks) the logs go to the system's temporary directory and are the operator's to keep.
LOG_DIR: Path | None = None


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A clean environment: nothing from the developer's shell leaks into the service under test."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    return {**keep, "PYTHONUNBUFFERED": "1", **extra}


def run_cli(
    env: Mapping[str, str], *args: str, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m app ...` as an operator would run it."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=base_env(env),
        cwd=REPO,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class ServiceProcess:
    def __init__(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = base_env(env)
        # The source tree it runs from: a test can start another release's code from a copy.
        self.cwd = REPO
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=LOG_DIR)[1])
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self) -> None:
        """Start (or restart: readiness is then judged on the new run's log lines only)."""
        self._log_offset = self.log_path.stat().st_size
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def current_logs(self) -> str:
        return self.logs()[self._log_offset :]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.logs()[-4000:]}")
            return self.is_ready()

        wait_until(ready, timeout, interval=0.2, what=f"{self.name} to be ready")

    def is_ready(self) -> bool:
        raise NotImplementedError

    def stop(self, timeout: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL, no chance to clean up: what an OOM kill or a node loss does."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


class ApiProcess(ServiceProcess):
    """`uvicorn app.api.main:app` with the flags the API Deployment uses (loopback instead of 0.0.0.0)."""

    def __init__(self, env: Mapping[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        super().__init__("api", self._argv(), env)

    def _argv(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "app.api.main:app", "--host", "127.0.0.1", "--port", str(self.port),
            "--proxy-headers", "--forwarded-allow-ips=*", "--timeout-graceful-shutdown", "20",
            "--timeout-keep-alive", "75",
        ]  # fmt: skip

    def start_ready(self, attempts: int = 3, timeout: float = 30) -> None:
        """Start and wait for /health; on a port taken between `free_port()` and bind, try another."""
        for attempt in range(attempts):
            self.start()
            try:
                self.wait_ready(timeout)
            except RuntimeError:
                if "address already in use" not in self.current_logs() or attempt == attempts - 1:
                    raise
                self.port = free_port()
                self.argv = self._argv()
            else:
                return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


class WorkerProcess(ServiceProcess):
    """`celery -A app.worker.celery_app worker` with the flags documented in docs/app.md."""

    def __init__(self, env: Mapping[str, str], metrics_port: int | None = None) -> None:
        self.metrics_port = metrics_port or free_port()
        argv = [
            sys.executable, "-m", "celery", "-A", "app.worker.celery_app", "worker",
            "--pool", "threads", "--queues", "enhancements", "--without-gossip", "--without-mingle",
            "--loglevel", "INFO", "--hostname", f"worker-{uuid.uuid4().hex[:8]}@%h",
        ]  # fmt: skip
        super().__init__("worker", argv, {**env, "WORKER_METRICS_PORT": str(self.metrics_port)})

    def is_ready(self) -> bool:
        return '"worker_ready"' in self.current_logs()

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
