"""Where in the repository a finding belongs: the stack-file key that set the value, else the line of
the component that declares the resource.

Used by ``python -m policy check --format sarif|json`` so code scanning can annotate the line a
reviewer would change. The lookup is textual (no Pulumi, no program run):

1. the policy's ``stack_key`` (``database.multiAz``) in ``Pulumi.<stack>.yaml``, when the stack file
   sets it;
2. the first ``<module>.<Class>(`` call for the resource's type in ``components/`` (``aws.rds.Instance``
   is declared as ``aws.rds.Instance(``; ``kubernetes:apps/v1:Deployment`` as ``apps.v1.Deployment(``);
3. the stack file's first line (a stack policy without a resource, or a type declared elsewhere).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = "ai-agents-platform"


@dataclass(frozen=True)
class Location:
    path: str  # relative to the repository root, with forward slashes
    line: int  # 1-based

    def to_json(self) -> dict[str, object]:
        return {"file": self.path, "line": self.line}


def resource_type(urn: str | None) -> str | None:
    """``aws:rds/instance:Instance`` from ``urn:pulumi:stack::project::parent$aws:rds/...::name``."""
    parts = (urn or "").split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) >= 4 else None


def constructor_call(type_token: str) -> str:
    """The call text a type is declared with: ``rds.Instance(`` or ``apps.v1.Deployment(``."""
    package, module, cls = [*type_token.split(":"), "", ""][:3]
    if package == "kubernetes":
        # apps/v1 -> apps.v1; networking.k8s.io/v1 -> networking.v1; helm.sh/v3 -> helm.v3
        group, _, version = module.partition("/")
        return f"{group.split('.')[0]}.{version}.{cls}("
    module = module.split("/")[0]
    return f"{module}.{cls}(" if module and module != "index" else f"{package}.{cls}("


@cache
def _sources(root: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    files = sorted((root / "components").rglob("*.py"))
    return tuple(
        (path.relative_to(root).as_posix(), tuple(path.read_text(encoding="utf-8").splitlines()))
        for path in files
    )


def component_line(type_token: str, root: Path = REPO) -> Location | None:
    needle = constructor_call(type_token)
    for path, lines in _sources(root):
        for number, line in enumerate(lines, start=1):
            if needle in line:
                return Location(path, number)
    return None


def stack_file(stack: str, root: Path = REPO) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def stack_key_line(stack: str, dotted: str, root: Path = REPO) -> Location | None:
    """The line of ``section.key.sub`` under ``ai-agents-platform:section`` in the stack file."""
    path = stack_file(stack, root)
    if not stack or not path.is_file():
        return None
    section, *keys = dotted.split(".")
    lines = path.read_text(encoding="utf-8").splitlines()
    pattern = re.compile(rf"^\s*{re.escape(PROJECT)}:{re.escape(section)}:")
    start = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
    if start is None:
        return None
    indent = len(lines[start]) - len(lines[start].lstrip())
    found = start
    for key in keys:
        key_pattern = re.compile(rf"^\s*{re.escape(key)}:")
        for index in range(found + 1, len(lines)):
            line = lines[index]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                return None  # left the section: the key is not set in this file
            if key_pattern.match(line):
                found = index
                break
        else:
            return None
    return Location(path.relative_to(root).as_posix(), found + 1)


PACK_FILE = "policy/PulumiPolicy.yaml"


def pack_key_line(stack: str, key: str, root: Path = REPO) -> Location | None:
    """The line of a knob in PulumiPolicy.yaml: under ``config.stacks.<stack>``, else ``config.defaults``."""
    lines = (root / PACK_FILE).read_text(encoding="utf-8").splitlines()
    key_pattern = re.compile(rf"^\s*{re.escape(key)}:")
    for section in (rf"^\s{{4}}{re.escape(stack)}:", r"^\s{2}defaults:"):
        start = next((i for i, line in enumerate(lines) if stack and re.match(section, line)), None)
        if start is None:
            continue
        indent = len(lines[start]) - len(lines[start].lstrip())
        for index in range(start + 1, len(lines)):
            line = lines[index]
            if (
                line.strip()
                and not line.lstrip().startswith("#")
                and len(line) - len(line.lstrip()) <= indent
            ):
                break
            if key_pattern.match(line):
                return Location(PACK_FILE, index + 1)
    return None


def locate(stack: str, urn: str | None, stack_key: str | None, root: Path = REPO) -> Location:
    """The best place for a finding (always a location: code scanning needs one per result).

    ``stack_key`` names a stack-file key (``database.multiAz``) or, as ``policy:<knob>``, a knob of
    PulumiPolicy.yaml (``policy:monthlyBudgetUsd``)."""
    if stack_key and stack_key.startswith("policy:"):
        found = pack_key_line(stack, stack_key.removeprefix("policy:"), root)
        if found:
            return found
    elif stack_key:
        found = stack_key_line(stack, stack_key, root)
        if found:
            return found
    type_token = resource_type(urn)
    if type_token:
        found = component_line(type_token, root)
        if found:
            return found
    fallback = stack_file(stack, root)
    if fallback.is_file():
        return Location(fallback.relative_to(root).as_posix(), 1)
    return Location("policy/PulumiPolicy.yaml", 1)
