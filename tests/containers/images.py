"""What an image build does, reproduced without a Docker engine.

- `Dockerfile`: one parsed Dockerfile (dockerfile-parse) with the facts the tests check.
- `dockerignore_excludes` / `copy_build_context`: the build context as Docker would send it (docker-py's
  .dockerignore matcher).
- `build_wheelhouse`: wheels for the build stage's pip when it runs offline (tests/containers/executor.py).
- `build_project_wheel`: `pip wheel` of that context (what the build stage does).
- `wheelhouse_from_installed`: wheels of the run-time dependency closure, re-packed from the
  distributions already installed in this virtualenv, so a fresh venv can be populated with
  `pip install --no-index --find-links` and nothing is downloaded.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path

from docker.utils.build import PatternMatcher
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.containers.executor import context_files, dockerignore_patterns

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "app" / "docker"
PROJECT = "ai-agents-platform"


@dataclass(frozen=True)
class Instruction:
    instruction: str
    value: str
    stage: int  # index of the FROM this instruction belongs to (-1: before the first FROM)


class Dockerfile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text()
        # A copy in memory: dockerfile-parse never touches (or creates) the real file.
        self._parser = DockerfileParser(fileobj=io.StringIO(self.text))

    @cached_property
    def instructions(self) -> list[Instruction]:
        stage = -1
        result: list[Instruction] = []
        for item in self._parser.structure:
            if item["instruction"] == "COMMENT":
                continue
            if item["instruction"] == "FROM":
                stage += 1
            result.append(Instruction(item["instruction"], item["value"], stage))
        return result

    @property
    def stages(self) -> int:
        return sum(1 for i in self.instructions if i.instruction == "FROM")

    def final(self, instruction: str) -> list[str]:
        """Values of `instruction` in the last stage (what the image runs with)."""
        last = self.stages - 1
        return [i.value for i in self.instructions if i.instruction == instruction and i.stage == last]

    def all(self, instruction: str) -> list[str]:
        return [i.value for i in self.instructions if i.instruction == instruction]

    @property
    def parent_images(self) -> list[str]:
        return list(self._parser.parent_images)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._parser.labels)

    @property
    def envs(self) -> dict[str, str]:
        return dict(self._parser.envs)

    @property
    def args(self) -> dict[str, str]:
        return dict(self._parser.args)

    def exec_form(self, instruction: str) -> list[str] | None:
        """The final stage's CMD/ENTRYPOINT as a list; None when absent; ValueError on shell form."""
        values = self.final(instruction)
        if not values:
            return None
        parsed = json.loads(values[-1])  # shell form is not JSON: raises
        if not isinstance(parsed, list) or not all(isinstance(a, str) for a in parsed):
            raise ValueError(f"{instruction} is not an exec-form list of strings")
        return [str(a) for a in parsed]

    @property
    def command(self) -> list[str]:
        """ENTRYPOINT + CMD, as the container starts it."""
        return [*(self.exec_form("ENTRYPOINT") or []), *(self.exec_form("CMD") or [])]


def dockerfile(image: str) -> Dockerfile:
    return Dockerfile(DOCKER_DIR / f"{image}.Dockerfile")


# --- build context ---------------------------------------------------------------------------------


def dockerignore_excludes(relative: str, root: Path = REPO) -> bool:
    """True when Docker leaves `relative` (posix, from the context root) out of the build context.

    docker-py's matcher (Docker's Python SDK, what it sends to the engine): patterns apply in order, the
    last match wins, `!` re-includes, a pattern matching a directory matches everything below it.
    """
    # docker-py annotates `filepath` as a PathLike but calls str methods on it: it takes the posix str.
    matcher = PatternMatcher(dockerignore_patterns(root))
    return bool(matcher.matches(relative))  # pyright: ignore[reportArgumentType]


def copy_build_context(destination: Path, root: Path = REPO) -> list[str]:
    """Copy the files Docker would send (after .dockerignore) into `destination`; return their paths."""
    copied: list[str] = []
    for relative in context_files(root):
        path = root / relative
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied.append(relative)
    return copied


def build_project_wheel(context: Path, wheel_dir: Path) -> Path:
    """`pip wheel --no-deps` of the context, with this venv's setuptools (no build isolation: offline)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--wheel-dir", str(wheel_dir), str(context)],
        check=True, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    (wheel,) = wheel_dir.glob("ai_agents_platform-*.whl")
    return wheel


# --- dependency wheels from the installed distributions ----------------------------------------------


def runtime_closure(project: str = PROJECT) -> dict[str, set[str]]:
    """Distribution name -> extras, for the project's base dependencies and everything they need."""
    closure: dict[str, set[str]] = {}
    pending: list[tuple[str, frozenset[str]]] = [(project, frozenset())]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        known = closure.get(key)
        if known is not None and extras <= known:
            continue
        closure.setdefault(key, set()).update(extras)
        for line in metadata.distribution(name).requires or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(e) for e in environments):
                pending.append((requirement.name, frozenset(requirement.extras)))
    closure.pop(canonicalize_name(project))
    return closure


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def repack_installed(name: str, wheel_dir: Path) -> Path:
    """Re-create the wheel of an installed distribution from its RECORD (site-packages files only).

    Console scripts are not copied: the installer regenerates them from entry_points.txt, for the
    new environment's interpreter, as it does from any wheel.
    """
    dist = metadata.distribution(name)
    files = dist.files
    if files is None:
        raise RuntimeError(f"{name}: no RECORD, cannot re-pack")
    info_dir = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    wheel_meta = (dist.read_text("WHEEL") or "").splitlines()
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta if line.startswith("Tag:")]
    if not tags:
        raise RuntimeError(f"{name}: no WHEEL tags (not installed from a wheel)")
    pythons, abis, platforms = (sorted({t.split("-")[i] for t in tags}) for i in range(3))
    tag = f"{'.'.join(pythons)}-{'.'.join(abis)}-{'.'.join(platforms)}"
    safe_name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    wheel = wheel_dir / f"{safe_name}-{dist.version}-{tag}.whl"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    records: list[tuple[str, str, str]] = []
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in files:
            relative = file.as_posix()
            if relative.startswith("..") or "__pycache__" in file.parts:
                continue
            if file.parts[0] == info_dir and file.name in skip:
                continue
            source = Path(str(dist.locate_file(file)))
            if not source.is_file():
                continue
            data = source.read_bytes()
            archive.writestr(relative, data)
            records.append((relative, _record_hash(data), str(len(data))))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows([*records, (f"{info_dir}/RECORD", "", "")])
        archive.writestr(f"{info_dir}/RECORD", buffer.getvalue())
    return wheel


def wheelhouse_from_installed(wheel_dir: Path, project: str = PROJECT) -> list[Path]:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    return [repack_installed(name, wheel_dir) for name in sorted(runtime_closure(project))]


def build_wheelhouse(wheel_dir: Path) -> Path:
    """What the build stage's pip needs, offline: the run-time closure and pyproject's build backend."""
    wheelhouse_from_installed(wheel_dir)
    build_requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in build_requires:
        repack_installed(Requirement(requirement).name, wheel_dir)
    return wheel_dir
