"""Entry point for both ways of running the pack.

- ``pulumi preview --policy-pack policy``: the engine starts ``python -u -m pulumi.policy <engine>
  <pack dir>``, which runs this file with ``runpy.run_path`` (no ``check`` argument). We then serve the
  policies over gRPC by constructing ``PolicyPack`` (it blocks until the engine is done).
- ``python -m policy check PLAN.json``: the offline checker (policy/cli.py).

This is the only module that constructs ``PolicyPack``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _serve() -> None:
    from pulumi_policy import EnforcementLevel, PolicyPack

    from policy.pack import PACK_NAME, POLICIES, initial_config
    from policy.settings import active_stack, load_settings

    PolicyPack(
        name=PACK_NAME,
        policies=POLICIES,
        enforcement_level=EnforcementLevel.MANDATORY,
        initial_config=initial_config(load_settings(active_stack())),
    )


def _offline(argv: list[str]) -> int:
    from policy.cli import main

    return main(argv)


if __name__ == "__main__":
    pack_dir = Path(__file__).resolve().parent
    # Run by path (the engine), the pack directory itself is sys.path[0]: make `policy` importable as a
    # package and keep its modules from shadowing top-level names.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != pack_dir]
    sys.path.insert(0, str(pack_dir.parent))
    run_by_engine = not __package__ and sys.argv[1:2] != ["check"]
    if run_by_engine:
        _serve()
    else:
        sys.exit(_offline(sys.argv[1:]))
