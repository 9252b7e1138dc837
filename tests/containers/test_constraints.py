"""constraints.txt pins the images' run-time dependencies (`make lock`); these tests keep it honest
offline: it must pin exactly the run-time closure of pyproject.toml, at the versions this suite runs
(`make deps` installs with it), and every image build must use it."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
from packaging.utils import canonicalize_name

from components.images import IMAGE_NAMES
from tests.containers.images import REPO, dockerfile, dockerignore_excludes, runtime_closure

CONSTRAINTS = REPO / "constraints.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)$")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in CONSTRAINTS.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt: not an exact pin: {line!r}"
        pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def test_pins_exactly_the_runtime_closure_of_pyproject() -> None:
    pinned, needed = set(_pins()), set(runtime_closure())
    assert not needed - pinned, f"run `make lock`: not pinned {sorted(needed - pinned)}"
    assert not pinned - needed, f"run `make lock`: pinned but not needed {sorted(pinned - needed)}"


def test_the_suite_runs_the_pinned_versions() -> None:
    drift = {
        name: (version, metadata.version(name))
        for name, version in _pins().items()
        if metadata.version(name) != version
    }
    assert not drift, f"installed versions differ from constraints.txt (pinned, installed): {drift}"


@pytest.mark.parametrize("image", IMAGE_NAMES)
def test_every_image_builds_with_the_constraints(image: str) -> None:
    builds = [run for run in dockerfile(image).all("RUN") if "pip wheel" in run]
    assert builds and all("--constraint constraints.txt" in run for run in builds)
    assert not dockerignore_excludes("constraints.txt"), "constraints.txt must be in the build context"
