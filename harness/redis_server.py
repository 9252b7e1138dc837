"""A throw-away redis-server on 127.0.0.1; can be stopped and restarted on the same port (outages)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.net import free_port, port_open, wait_until


class RedisServer:
    def __init__(
        self,
        port: int | None = None,
        password: str = "redis-password-for-tests",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self._process: subprocess.Popen[bytes] | None = None
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._argv = [
            executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.dir), "--requirepass", password, "--loglevel", "warning", *extra_args,
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        log = (self.dir / "redis.log").open("ab")
        process = subprocess.Popen(self._argv, stdout=log, stderr=subprocess.STDOUT)
        self._process = process

        def listening() -> bool:
            # An open port is not proof enough: another server may hold it and ours have exited.
            if process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited: see {self.dir / 'redis.log'}")
            return port_open(self.port)

        wait_until(listening, 10, what="redis-server")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
