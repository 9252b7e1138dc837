"""A Dockerfile executor without an engine: each instruction done for real in a scratch root directory.

What stands in for what (read this before trusting a green run):

- `FROM <image>`: the base image is *not* pulled (there is no registry access). Its stand-in is the host:
  `/usr` (and the `/bin`, `/lib`, ... links or directories) bound read-only, the Python runtime running
  these tests bound read-only and linked as `/usr/local/bin/python{,3,3.X}` (where python:3.X-slim keeps
  it), a fresh `/etc` holding only root/nobody accounts plus the host's loader, TLS and resolver files,
  and the official image's `PATH`/`LANG`. The tag's Python major.minor must equal the host's, or the
  build fails. The base image's own OS packages, their versions and its Python patch level are not
  reproduced.
- `FROM <earlier stage>` starts from a copy of that stage's root, environment, working dir and user.
- `COPY`/`ADD` read the build context as Docker sends it: `.dockerignore` is applied with docker-py's
  matcher (`docker.utils.build`, Docker's own Python SDK), so an excluded or misspelt source is "not
  found" and fails the build. `--from=<stage>` reads that stage's root. `--chmod` is applied;
  `--chown` is checked and recorded in `Image.owners` only: one unprivileged user maps to one UID in
  the namespace, so every file of the root belongs to the same UID (the final command therefore runs on a
  read-only root, as the pods do). `ADD <url> --checksum=` downloads on the host and verifies the sum.
- `RUN` executes `/bin/sh -c` inside the root with bubblewrap (bwrap): a new user namespace (no root, no
  setuid helper), the stage's UID/GID mapped onto the caller, the stage's ENV (and ARGs) only, its
  WORKDIR, a fresh /proc and /dev, and the host's network (as `docker build` has by default: the build
  stage's `pip wheel` downloads from PyPI).
- `ENV`, `ARG` (global before the first FROM, redeclared per stage, build-arg overrides), `WORKDIR`,
  `USER`, `CMD`, `ENTRYPOINT`, `LABEL`, `EXPOSE` are recorded with Docker's variable expansion
  (dockerfile-parse's); `${VAR:-x}`-style modifiers are refused rather than half-supported.
- No layers: the result of each stage is a directory. Stages are cached by a hash of their
  instructions, build args and build context (`cache_dir`), so identical build stages build once.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter, extract_key_values

# What the python:3.X-slim images declare (their `docker inspect` Config.Env).
BASE_ENV = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Build args Docker predefines (proxies pass through to RUN without being declared).
PREDEFINED_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
# Where the host reaches PyPI through a TLS-inspecting proxy, its CA bundle (the stand-in /etc/ssl is a copy
# of the host's) is named to pip the same way: passed to RUN like the proxies, never written to the image.
TRUST_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
# Host files copied into the stand-in /etc: the dynamic loader, TLS trust, name resolution, shadow-utils.
BASE_ETC = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates.conf", "resolv.conf", "hosts",
    "host.conf", "gai.conf", "login.defs", "localtime",
)  # fmt: skip
BASE_ACCOUNTS = {
    "passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "shadow": "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
    "gshadow": "root:*::\nnogroup:*::\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
}
WHEELHOUSE = "/run/host-wheelhouse"
# The host's OS, bound read-only as the base image's (merged-/usr links become links in the root).
HOST_TOP_DIRECTORIES = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Part of every stage's cache key: bump it when what the executor does changes (the stand-in, COPY, ...).
EXECUTOR_VERSION = "2"
UNSUPPORTED_EXPANSION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:[-+?]")


class BuildError(Exception):
    """A failed instruction: the message names the Dockerfile, its line and the instruction."""


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot create a user namespace here."""


@dataclass(frozen=True)
class Step:
    instruction: str
    value: str
    line: int  # 1-based, as editors and `docker build` report it
    content: str

    def where(self, dockerfile: Path) -> str:
        return f"{dockerfile.name}:{self.line}: {self.instruction} {self.value.strip()[:120]}"


@dataclass
class Image:
    """A built stage: its root directory and the configuration `docker inspect` would show."""

    root: Path
    env: dict[str, str] = field(default_factory=lambda: dict(BASE_ENV))
    workdir: str = "/"
    user: str = "0:0"
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    exposed: list[str] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # path in the image -> `--chown` value
    key: str = ""

    @property
    def command(self) -> list[str]:
        return [*self.entrypoint, *self.cmd]

    def ids(self, user: str | None = None) -> tuple[int, int]:
        return resolve_user(self.root, user or self.user)

    def to_json(self) -> str:
        config = {k: v for k, v in vars(self).items() if k not in {"root"}}
        return json.dumps(config, sort_keys=True)

    @classmethod
    def from_json(cls, root: Path, text: str) -> Image:
        return cls(root=root, **json.loads(text))


# --- the sandbox -------------------------------------------------------------------------------------


def python_prefix() -> Path:
    return Path(sys.base_prefix).resolve()


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def sandbox_argv(
    root: Path,
    command: Sequence[str],
    *,
    uid: int,
    gid: int,
    env: Mapping[str, str],
    workdir: str,
    read_only: bool,
    info_fd: int | None = None,
    binds: Sequence[tuple[Path, str]] = (),
) -> list[str]:
    """bwrap running `command` in `root` as uid:gid of a new user namespace, on the host "base image"."""
    prefix = str(python_prefix())
    argv = ["bwrap", "--unshare-user", "--uid", str(uid), "--gid", str(gid), "--unshare-ipc",
            "--unshare-uts", "--hostname", "buildkitsandbox" if not read_only else "image",
            "--die-with-parent", "--clearenv"]  # fmt: skip
    if read_only:
        # bwrap cannot create mount points on a read-only root: the interpreter's is made here, and stays
        # (an empty directory at the host interpreter's path is all the image gains from it).
        _inside(root, prefix).mkdir(parents=True, exist_ok=True)
    argv += ["--ro-bind" if read_only else "--bind", str(root), "/"]
    for top in HOST_TOP_DIRECTORIES:
        host = Path("/") / top
        if host.is_dir() and not host.is_symlink():  # merged-/usr links are made by make_base_root
            argv += ["--ro-bind", str(host), f"/{top}"]
    # The image's Python where python:3.X-slim keeps it (/usr/local/bin/python3.X, /usr/local/lib/python3.X),
    # and at its own path too: its loader path to libpython may be absolute (pyenv's RUNPATH; setup-python's
    # builds carry an RPATH under /opt/hostedtoolcache, actions/setup-python#871).
    argv += ["--ro-bind", prefix, "/usr/local", "--ro-bind", prefix, prefix]
    for host_path, inside in binds:
        argv += ["--ro-bind", str(host_path), inside]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    if read_only:
        argv += ["--tmpfs", "/tmp"]  # the pods' only writable path (an emptyDir)
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", workdir, "--", *command]
    return argv


def sandbox_problem() -> str | None:
    """Why the sandbox cannot run here (None: it can), with what to do about it."""
    if shutil.which("bwrap") is None:
        return "bwrap (bubblewrap) is not installed: run tests/bin/install-system-deps (apt: bubblewrap)"
    try:
        probe = subprocess.run(
            ["bwrap", "--unshare-user", "--uid", "10001", "--gid", "10001", "--ro-bind", "/", "/",
             "--", "true"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap does not start: {error}"
    if probe.returncode != 0:
        return (
            f"bwrap cannot create a user namespace ({probe.stderr.strip()}): enable unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces>0; on Ubuntu "
            ">= 23.10 load the bwrap AppArmor profile or set kernel.apparmor_restrict_unprivileged_userns=0)"
        )
    return None


def _created_mount_points(root: Path, paths: Sequence[str]) -> list[Path]:
    """Directories bwrap will create in `root` for the sandbox's own mounts: removed after each RUN."""
    created: list[Path] = []
    for path in paths:
        for part in [*reversed(PurePosixPath(path).parents[:-1]), PurePosixPath(path)]:
            created.append(root / str(part).lstrip("/"))
    return [p for p in dict.fromkeys(created) if not p.exists()]


def run_in_root(
    root: Path,
    command: Sequence[str],
    *,
    uid: int,
    gid: int,
    env: Mapping[str, str],
    workdir: str,
    binds: Sequence[tuple[Path, str]] = (),
) -> subprocess.CompletedProcess[str]:
    """Run a build step (writable root); leave no trace of the sandbox's own mount points."""
    leftovers = _created_mount_points(root, [str(python_prefix()), *(inside for _, inside in binds)])
    try:
        return subprocess.run(
            sandbox_argv(
                root, command, uid=uid, gid=gid, env=env, workdir=workdir, read_only=False, binds=binds
            ),
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
    finally:
        for directory in reversed(leftovers):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()


# --- users, paths ------------------------------------------------------------------------------------


def resolve_user(root: Path, user: str) -> tuple[int, int]:
    """`USER name[:group]` or `uid[:gid]` against the root's /etc/passwd and /etc/group, as Docker does."""
    name, _, group = user.partition(":")
    passwd = _table(root / "etc" / "passwd")
    groups = _table(root / "etc" / "group")
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in passwd.values() if e[2] == name), None)
        default_gid = int(entry[3]) if entry else 0
    elif name in passwd:
        uid, default_gid = int(passwd[name][2]), int(passwd[name][3])
    else:
        raise BuildError(f"unable to find user {name}: no matching entries in passwd file")
    if not group:
        return uid, default_gid
    if group.isdigit():
        return uid, int(group)
    if group not in groups:
        raise BuildError(f"unable to find group {group}: no matching entries in group file")
    return uid, int(groups[group][2])


def _table(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        return {}
    return {f[0]: f for f in (line.split(":") for line in path.read_text().splitlines() if line)}


def _inside(root: Path, path: str, workdir: str = "/") -> Path:
    """`path` (absolute, or relative to the working dir) in the image, never outside `root`."""
    posix = PurePosixPath(workdir) / path
    parts: list[str] = []
    for part in posix.parts[1:]:
        if part == "..":
            parts = parts[:-1]
        elif part not in {"", "."}:
            parts.append(part)
    return root.joinpath(*parts)


def _copy_item(source: Path, target: Path) -> None:
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            target = target / source.name
        shutil.copy2(source, target, follow_symlinks=False)


def _chmod_tree(path: Path, mode: int) -> None:
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for item in paths:
        if not item.is_symlink():
            item.chmod(mode)


# --- the build context -------------------------------------------------------------------------------


def dockerignore_patterns(context: Path) -> list[str]:
    """The patterns of `.dockerignore`, read as docker-py reads them (blank lines and comments out)."""
    ignore = context / ".dockerignore"
    if not ignore.is_file():
        return []
    return [
        line.strip() for line in ignore.read_text().splitlines() if line.strip() and line.strip()[0] != "#"
    ]


def context_files(context: Path) -> list[str]:
    """Posix paths of the files Docker sends as the build context (`.dockerignore` applied)."""
    included = exclude_paths(str(context), dockerignore_patterns(context))
    return sorted(p for p in included if (context / p).is_file() and p != ".dockerignore")


def context_digest(context: Path, files: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for relative in files:
        digest.update(relative.encode() + b"\0" + (context / relative).read_bytes() + b"\0")
    return digest.hexdigest()


# --- the executor ------------------------------------------------------------------------------------


Fetcher = Callable[[str, str | None], bytes]


def fetch_url(url: str, checksum: str | None) -> bytes:
    """ADD's download, on the host as BuildKit does it; a wrong `--checksum` fails the step."""
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
    if checksum is not None:
        algorithm, _, expected = checksum.partition(":")
        actual = hashlib.new(algorithm, data).hexdigest()
        if actual != expected:
            raise BuildError(f"checksum mismatch: expected {checksum}, got {algorithm}:{actual}")
    return data


@dataclass
class Build:
    """One Dockerfile, built from `context` into directories under `cache_dir`."""

    dockerfile: Path
    context: Path
    cache_dir: Path
    build_args: Mapping[str, str] = field(default_factory=dict)
    fetch: Fetcher = fetch_url
    log: list[str] = field(default_factory=list)
    text: str | None = None  # the Dockerfile's text, when it is not the file's (mutation tests)
    # None: RUN reaches PyPI over the network, as `docker build` does. A directory of wheels: RUN sees it
    # read-only with PIP_FIND_LINKS/PIP_NO_INDEX set (like a proxy variable: not in the image's ENV), so
    # pip resolves offline, from exactly those wheels.
    wheelhouse: Path | None = None
    context_key: str = ""
    used: set[str] = field(default_factory=set)  # the cache keys of the stages this build used

    def steps(self) -> list[Step]:
        source = self.text if self.text is not None else self.dockerfile.read_text()
        parser = DockerfileParser(fileobj=io.StringIO(source))
        return [
            Step(item["instruction"], item["value"], item["startline"] + 1, item["content"])
            for item in parser.structure
            if item["instruction"] != "COMMENT"
        ]

    def stages(self) -> list[tuple[Step, list[Step]]]:
        stages: list[tuple[Step, list[Step]]] = []
        for step in self.steps():
            if step.instruction == "FROM":
                stages.append((step, []))
            elif stages:
                stages[-1][1].append(step)
        return stages

    def global_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        for step in self.steps():
            if step.instruction == "FROM":
                break
            if step.instruction == "ARG":
                args.update(self._declared(step, args, {}))
        return args

    def _declared(self, step: Step, args: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
        declared: dict[str, str] = {}
        for word in WordSplitter(step.value).split(dequote=False):
            name, has_default, default = str(word).partition("=")
            if name in self.build_args:
                declared[name] = self.build_args[name]
            elif has_default:
                declared[name] = self._expand(step, default, args, env)[0] if default else ""
            elif name in args:
                declared[name] = args[name]
        return declared

    def _expand(self, step: Step, text: str, args: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
        if UNSUPPORTED_EXPANSION.search(text):
            raise BuildError(f"{step.where(self.dockerfile)}: ${{VAR:modifier}} expansion is not supported")
        # Docker's order: the stage's ENV wins over its ARGs.
        return [str(word) for word in WordSplitter(text, args={**args, **env}, envs={}).split()]

    def build(self, target: str | None = None) -> Image:
        """Build up to `target` (a stage name; default the last stage) and return its image."""
        files = context_files(self.context)
        context_key = self.context_key = context_digest(self.context, files)
        global_args = self.global_args()
        built: dict[str, Image] = {}
        image: Image | None = None
        for index, (from_step, steps) in enumerate(self.stages()):
            words = self._expand(from_step, from_step.value, global_args, {})
            base, name = words[0], (words[2] if len(words) == 3 and words[1].lower() == "as" else str(index))
            # Everything the stage's result depends on: the context, the args, the stand-in, its
            # instructions and the stages before it (a base stage or a COPY --from source).
            key = _hash(EXECUTOR_VERSION, context_key, json.dumps(sorted(self.build_args.items())), sys.version,
                        str(self.wheelhouse and _hash(*sorted(p.name for p in self.wheelhouse.iterdir()))),
                        str(python_prefix()), from_step.content, *(s.content for s in steps),
                        *(image.key for image in built.values()))  # fmt: skip
            image = self._cached(key) or self._build_stage(from_step, base, steps, built, files, key)
            built[name] = image
            built[str(index)] = image
            self.used.add(key)
            if target is not None and name == target:
                break
        if image is None:
            raise BuildError(f"{self.dockerfile.name}: no FROM instruction")
        return image

    def _cached(self, key: str) -> Image | None:
        config = self.cache_dir / f"{key}.json"
        if not config.is_file():
            return None
        self.log.append(f"CACHED {key[:12]}")
        return Image.from_json(self.cache_dir / key, config.read_text())

    def _build_stage(
        self,
        from_step: Step,
        base: str,
        steps: list[Step],
        built: Mapping[str, Image],
        files: list[str],
        key: str,
    ) -> Image:
        root = self.cache_dir / key
        if root.exists():
            shutil.rmtree(root)  # a stage that failed half-way
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if base in built:
            parent = built[base]
            shutil.copytree(parent.root, root, symlinks=True)
            image = Image.from_json(root, parent.to_json())
        else:
            self._check_base(from_step, base)
            make_base_root(root)
            image = Image(root=root)
        image.key = key
        args: dict[str, str] = {}
        self.log.append(
            f"{from_step.where(self.dockerfile)} ({'stage' if base in built else 'host stand-in'})"
        )
        for step in steps:
            self.log.append(step.where(self.dockerfile))
            try:
                self._execute(step, image, args, built, files)
            except BuildError as error:
                message = str(error)
                if not message.startswith(self.dockerfile.name):
                    message = f"{step.where(self.dockerfile)}: {message}"
                raise BuildError(message) from None
        (self.cache_dir / f"{key}.json").write_text(image.to_json())
        return image

    def _check_base(self, step: Step, base: str) -> None:
        match = re.match(r"^(?:[\w.-]+/)*python:(\d+)\.(\d+)", base)
        if match is None:
            raise BuildError(
                f"{step.where(self.dockerfile)}: no stand-in for base image {base} (python only)"
            )
        wanted = f"{match[1]}.{match[2]}"
        if wanted != python_version():
            raise BuildError(
                f"{step.where(self.dockerfile)}: the base is Python {wanted}; the stand-in would be "
                f"this host's Python {python_version()}"
            )

    def _execute(
        self, step: Step, image: Image, args: dict[str, str], built: Mapping[str, Image], files: list[str]
    ) -> None:
        instruction = step.instruction
        if instruction == "ARG":
            args.update(self._declared(step, {**self.global_args(), **args}, image.env))
        elif instruction == "ENV":
            image.env.update(extract_key_values(True, args, image.env, step.value))
        elif instruction == "LABEL":
            image.labels.update(extract_key_values(True, args, image.env, step.value))
        elif instruction == "WORKDIR":
            (path,) = self._expand(step, step.value, args, image.env)
            image.workdir = str(PurePosixPath(image.workdir) / path)
            _inside(image.root, image.workdir).mkdir(parents=True, exist_ok=True)
        elif instruction == "USER":
            (user,) = self._expand(step, step.value, args, image.env)
            image.user = user
        elif instruction in {"CMD", "ENTRYPOINT"}:
            value = _exec_form(step.value)
            if instruction == "CMD":
                image.cmd = value
            else:
                image.entrypoint, image.cmd = value, []
        elif instruction == "EXPOSE":
            image.exposed += self._expand(step, step.value, args, image.env)
        elif instruction == "RUN":
            self._run(step, image, args)
        elif instruction in {"COPY", "ADD"}:
            self._copy(step, image, args, built, files)
        elif instruction in {"HEALTHCHECK", "STOPSIGNAL", "SHELL", "VOLUME", "ONBUILD", "MAINTAINER"}:
            pass  # configuration a container runtime reads; nothing to execute at build time
        else:
            raise BuildError(f"unknown instruction {instruction}")

    def _run(self, step: Step, image: Image, args: Mapping[str, str]) -> None:
        if step.value.lstrip().startswith("--"):
            raise BuildError("RUN flags (--mount, --network, ...) are not supported by this executor")
        command = (
            _exec_form(step.value) if step.value.lstrip().startswith("[") else ["/bin/sh", "-c", step.value]
        )
        passed = (*PREDEFINED_ARGS, *(n.lower() for n in PREDEFINED_ARGS), *TRUST_VARIABLES)
        proxies = {name: os.environ[name] for name in passed if name in os.environ}
        env = {**proxies, **args, **image.env}
        uid, gid = image.ids()
        binds: list[tuple[Path, str]] = []
        if self.wheelhouse is not None:
            binds.append((self.wheelhouse, WHEELHOUSE))
            env = {**env, "PIP_FIND_LINKS": WHEELHOUSE, "PIP_NO_INDEX": "1"}
        result = run_in_root(
            image.root, command, uid=uid, gid=gid, env=env, workdir=image.workdir, binds=binds
        )
        self.log.append(result.stdout[-2000:] + result.stderr[-2000:])
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise BuildError(f"did not complete successfully: exit code {result.returncode}\n{tail}")

    def _copy(
        self, step: Step, image: Image, args: Mapping[str, str], built: Mapping[str, Image], files: list[str]
    ) -> None:
        words = self._expand(step, step.value, args, image.env)
        flags = {w.split("=", 1)[0]: w.partition("=")[2] for w in words if w.startswith("--")}
        paths = [w for w in words if not w.startswith("--")]
        if paths and paths[0].startswith("["):
            paths = _exec_form(" ".join(paths))
        unknown = set(flags) - {"--from", "--chown", "--chmod", "--checksum", "--link"}
        if unknown:
            raise BuildError(f"unsupported flag(s) {sorted(unknown)}")
        if len(paths) < 2:
            raise BuildError("needs a source and a destination")
        *sources, dest = paths
        dest_is_dir = dest.endswith("/") or len(sources) > 1
        target = _inside(image.root, dest, image.workdir)
        if "--from" in flags and flags["--from"] not in built:
            raise BuildError(f"--from={flags['--from']}: no such stage before this one")
        copied: list[Path] = []
        for source in sources:
            if step.instruction == "ADD" and re.match(r"^https?://", source):
                copied.append(self._add_url(source, flags.get("--checksum"), target, dest_is_dir))
                continue
            for item in self._sources(source, flags.get("--from"), built, files):
                destination = (
                    target / item.name if (dest_is_dir or target.is_dir()) and item.is_file() else target
                )
                _copy_item(item, destination)
                copied.append(destination)
        if "--chmod" in flags:
            for path in copied:
                _chmod_tree(path, int(flags["--chmod"], 8))
        if "--chown" in flags:
            resolve_user(image.root, flags["--chown"])  # an unknown user or group fails, as in Docker
            image.owners[dest] = flags["--chown"]

    def _sources(
        self, source: str, stage: str | None, built: Mapping[str, Image], files: list[str]
    ) -> list[Path]:
        """The paths `source` names: in the context (after .dockerignore) or in an earlier stage's root."""
        if stage is not None:
            root = built[stage].root
            matches = sorted(root.glob(source.lstrip("/"))) if any(c in source for c in "*?[") else []
            if not matches and _inside(root, source).exists():
                matches = [_inside(root, source)]
            if not matches:
                raise BuildError(f'failed to compute cache key: "{source}" not found in stage {stage}')
            return matches
        relative = str(PurePosixPath("/") / source).lstrip("/").rstrip("/") or "."
        sent = set(files)
        directories = {str(parent) for f in files for parent in PurePosixPath(f).parents} - {"."}
        if relative == ".":
            roots = ["."]
        elif any(c in relative for c in "*?["):
            roots = sorted(p for p in sent | directories if fnmatch.fnmatchcase(p, relative))
        else:
            roots = [relative] if relative in sent or relative in directories else []
        if not roots:
            raise BuildError(
                f'failed to compute cache key: "{source}" not found in the build context '
                "(missing, misspelt, or excluded by .dockerignore)"
            )
        return [self._staged_context_path(r, files) for r in roots]

    def _staged_context_path(self, relative: str, files: list[str]) -> Path:
        """A path of the context as sent: a directory holds only its sent files."""
        path = self.context / relative
        if path.is_file():
            return path
        staged = self.cache_dir / "context" / self.context_key[:16]
        if not staged.exists():
            for name in files:
                (staged / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.context / name, staged / name)
        return staged if relative == "." else staged / relative

    def _add_url(self, url: str, checksum: str | None, target: Path, dest_is_dir: bool) -> Path:
        try:
            data = self.fetch(url, checksum)
        except (urllib.error.URLError, OSError) as error:
            raise BuildError(f"cannot download {url}: {error}") from None
        destination = target / url.rsplit("/", 1)[-1] if dest_is_dir else target
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
        destination.chmod(0o600)  # ADD <url> writes 0600 files unless --chmod says otherwise
        return destination


def make_base_root(root: Path) -> None:
    """The base image stand-in's writable part: directories and a minimal /etc (see the module docstring)."""
    for directory in ("etc", "root", "opt", "var/log", "var/tmp", "run", "home"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(mode=0o1777, parents=True, exist_ok=True)
    for top in HOST_TOP_DIRECTORIES:
        host = Path("/") / top
        if host.is_symlink() and not (root / top).is_symlink():
            (root / top).symlink_to(host.readlink())
    for name in BASE_ETC:
        host = Path("/etc") / name
        if host.is_dir():
            shutil.copytree(host, root / "etc" / name, symlinks=True, ignore=_public_only)
        elif host.is_file() and os.access(host, os.R_OK):
            shutil.copy2(host, root / "etc" / name)
    for name, content in BASE_ACCOUNTS.items():
        (root / "etc" / name).write_text(content)


def _public_only(directory: str, names: list[str]) -> list[str]:
    """What a copy of the host's /etc leaves out: private keys (/etc/ssl/private) and anything unreadable."""
    return [n for n in names if n == "private" or not os.access(Path(directory) / n, os.R_OK)]


def _exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    if not isinstance(parsed, list) or not all(isinstance(a, str) for a in parsed):
        raise BuildError(f"not an exec-form list of strings: {value}")
    return [str(a) for a in parsed]


def _hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def prune(cache_dir: Path, keep: set[str], context_key: str) -> None:
    """Remove the stages (and staged contexts) of `cache_dir` no build of this session used."""
    for entry in cache_dir.iterdir():
        stem = entry.name.removesuffix(".json")
        if entry.name == "lock" or stem in keep:
            continue
        if entry.name == "context":
            for staged in entry.iterdir():
                if staged.name != context_key[:16]:
                    shutil.rmtree(staged, ignore_errors=True)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (parallel test workers building the same image wait for each other)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
