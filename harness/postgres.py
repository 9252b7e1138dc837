"""A throw-away PostgreSQL cluster on 127.0.0.1 (fsync off), started as the `postgres` user when root."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.net import free_port

OWNER = "owner"
OWNER_PASSWORD = "owner-password-for-tests-only"


def _bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if candidates:
        return candidates[0].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL server binaries not found; run tests/bin/install-system-deps")
    return Path(initdb).parent


class PostgresServer:
    def __init__(
        self, base_dir: Path | None = None, port: int | None = None, extra_options: str = ""
    ) -> None:
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="pg-test-"))
        self.port = port or free_port()
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_file = self.base_dir / "postgres.log"
        self._bin = _bin_dir()
        self._as_root = os.geteuid() == 0
        # More `-c name=value` server settings (e.g. TLS: ssl=on and its certificate files).
        self.extra_options = extra_options

    def _cmd(self, *argv: str) -> list[str]:
        # initdb refuses to run as root: drop to the postgres user for every server command.
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_root else list(argv)

    def chown(self, *paths: Path) -> None:
        """Hand files to the server's user (its TLS key must be the server's own, mode 0600)."""
        self._chown(*paths)

    def _chown(self, *paths: Path) -> None:
        if self._as_root:
            entry = pwd.getpwnam("postgres")
            for path in paths:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> PostgresServer:
        self.base_dir.chmod(0o755)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(OWNER_PASSWORD + "\n")
        self.log_file.touch()
        self._chown(self.socket_dir, pwfile, self.log_file)
        if not self.data_dir.exists():
            self.data_dir.mkdir()
            self._chown(self.data_dir)
            subprocess.run(
                self._cmd(
                    str(self._bin / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", OWNER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "-E", "UTF8",
                    "--no-sync",
                ),
                check=True,
                capture_output=True,
            )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 {self.extra_options}"
        )
        subprocess.run(
            self._cmd(
                str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                "-o", options, "-w", "-t", "30", "start",
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        return self

    def stop(self) -> None:
        subprocess.run(
            self._cmd(str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"),
            check=False,
            capture_output=True,
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def url(self, user: str = OWNER, password: str = OWNER_PASSWORD, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database owned by the owner role; return its owner URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=OWNER,
            password=OWNER_PASSWORD,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(database=name)
