"""The import direction between the repository's packages (docs/architecture.md, "Layers").

Read from the source (every import statement, lazy ones inside functions included), not from what
happens to be imported at run time, so a new arrow fails here before anyone trips on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Which of the project's packages each may import. Everything not listed is forbidden.
ALLOWED: dict[str, frozenset[str]] = {
    # The service stands alone: it is what the images carry.
    "app": frozenset(),
    # The bottom layer of the infrastructure: typed components and their settings.
    "components": frozenset(),
    # The policy pack may read the service's contract and supported versions from components.
    "policy": frozenset({"components"}),
    # The Pulumi program composes components.
    "infra": frozenset({"components"}),
    # The account bootstrap (its own Pulumi project) reuses the components' settings and IAM helpers.
    "bootstrap": frozenset({"components"}),
    # The operator CLI plans the programs (the platform's and the bootstrap's) and judges with the pack.
    "stacks": frozenset({"bootstrap", "components", "infra", "policy"}),
    # The development harness starts the service's own processes.
    "harness": frozenset({"app"}),
    "bench": frozenset({"app", "harness"}),
    "tests": frozenset({"app", "bench", "bootstrap", "components", "harness", "infra", "policy", "stacks"}),
}
PACKAGES = frozenset(ALLOWED)


def imported_packages(path: Path) -> set[str]:
    """The project's top-level packages that `path` imports, absolute imports only."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return found & PACKAGES


def violations(package: str, root: Path = REPO) -> list[str]:
    found: list[str] = []
    for path in sorted((root / package).rglob("*.py")):
        for imported in sorted(imported_packages(path) - ALLOWED[package] - {package}):
            found.append(f"{path.relative_to(root)} imports {imported}")
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_follow_the_layers(package: str) -> None:
    assert (REPO / package).is_dir()
    assert violations(package) == []


def test_a_forbidden_import_is_found(tmp_path: Path) -> None:
    module = tmp_path / "components" / "sneaky.py"
    module.parent.mkdir()
    module.write_text("def later():\n    from infra.config import StackConfig\n    return StackConfig\n")
    assert violations("components", tmp_path) == ["components/sneaky.py imports infra"]
