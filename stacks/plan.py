"""The offline plan: the real ``infra/`` program under Pulumi's unit-test mocks.

No cloud account and no Pulumi CLI: ``pulumi.runtime.set_mocks`` stands in for the engine, every
resource registration is captured with what the engine would receive (type, name, parent, provider,
dependencies, protect, inputs), and the result is written to ``build/plan/<stack>/``:

- ``plan.json``   every resource, inputs with the engine's camelCase names, secrets as ``"[secret]"``
- ``manifests/``  every Kubernetes object as YAML, one file per object (what would be applied)
- ``policy.json`` the policy pack's verdict on this plan
- ``plan.md``     a summary for terminals and PR comments
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import PROJECT, REPO_ROOT, StackConfig, parse_stack_config, read_stack_file, stack_file
from stacks.mocks import CapturingMonitor, PlanMocks, Registration, is_secret

SECRET = "[secret]"  # noqa: S105 - the redaction marker, not a password
KUBERNETES_PREFIX = "kubernetes:"
# Kubernetes resource types that are not objects applied to the cluster.
NOT_MANIFESTS = ("kubernetes:helm.sh/", "kubernetes:yaml/", "kubernetes:kustomize/")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    stack: str
    config: StackConfig
    resources: list[dict[str, Any]]
    outputs: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"project": PROJECT, "stack": self.stack, "resources": self.resources, "outputs": self.outputs}


def redact(value: Any) -> Any:
    """Replace every secret (as the engine marks it) with ``"[secret]"``, recursively."""
    if is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [redact(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def resource_entry(registration: Registration) -> dict[str, Any]:
    return {
        "urn": registration.urn,
        "type": registration.type,
        "name": registration.name,
        "parent": registration.parent or None,
        # Provider references arrive as "<urn>::<id>"; the URN is what identifies the provider.
        "provider": registration.provider.rsplit("::", 1)[0] if registration.provider else None,
        "dependsOn": registration.depends_on,
        "protect": registration.protect,
        "custom": registration.custom,
        "props": redact(registration.inputs),
    }


def resource_entries(registrations: list[Registration]) -> list[dict[str, Any]]:
    # Registrations complete in whatever order the event loop runs them; sort so plans are diffable.
    return sorted((resource_entry(r) for r in registrations), key=lambda r: str(r["urn"]))


@dataclass(frozen=True)
class Capture:
    """Every registration the program made, as the engine received it (secrets still wrapped)."""

    registrations: list[Registration]
    outputs: dict[str, Any]


def ensure_event_loop() -> None:
    """Give this thread an event loop if it has none: Pulumi's synchronous helpers run on the current
    one, and `asyncio.run()` leaves the thread without one (so a process that used it before, such as
    a test worker, could not plan afterwards)."""
    import asyncio

    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def capture_under_mocks(
    mocks: PlanMocks,
    *,
    project: str,
    stack: str,
    config_values: dict[str, Any],
    program: Callable[[], Callable[[], None]],
) -> Capture:
    """Run a Pulumi program under `mocks` with the stack's config, as the engine would.

    `program` returns the program's main function; it is called only once the mocks are in place,
    because a program module may declare resources or read config at import."""
    # Heavy imports only once the config is known to be valid.
    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await  # pyright: ignore[reportPrivateUsage]

    ensure_event_loop()
    monitor = CapturingMonitor(mocks)
    settings.reset_options()  # a fresh root stack per plan, so one process can plan several stacks
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    # Structured config reaches a Pulumi program as JSON text, exactly as the engine passes it.
    set_all_config({key: _config_text(value) for key, value in config_values.items()})
    _sync_await(run_pulumi_func(program()))
    root = settings.get_root_resource()
    outputs = _sync_await(_resolve_outputs(getattr(root, "outputs", {}) or {}))
    return Capture(registrations=list(monitor.registrations), outputs=outputs)


def _infra_main() -> Callable[[], None]:
    from infra.program import main

    return main


def capture_program(stack: str, config_values: dict[str, Any], config: StackConfig) -> Capture:
    """Run ``infra.program.main`` under mocks with the stack's config, as the engine would."""
    return capture_under_mocks(
        PlanMocks(config.aws.region),
        project=PROJECT,
        stack=stack,
        config_values=config_values,
        program=_infra_main,
    )


def run_program(stack: str, config_values: dict[str, Any], config: StackConfig) -> Plan:
    """The plan of the program: every registration, secrets redacted, in a stable order."""
    capture = capture_program(stack, config_values, config)
    return Plan(
        stack=stack, config=config, resources=resource_entries(capture.registrations), outputs=capture.outputs
    )


def _config_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def _resolve_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """Stack exports as plain values (nested Outputs included); a secret export is ``"[secret]"``."""
    import pulumi

    resolved: dict[str, Any] = {}
    for key, value in outputs.items():
        output: pulumi.Output[Any] = pulumi.Output.from_input(value)
        secret = await output.is_secret()
        resolved[key] = SECRET if secret else await output.future()
    return resolved


def load_config(stack: str, path: Path | None = None) -> tuple[dict[str, Any], StackConfig]:
    """The stack file's config map and its validated model; ConfigError on anything wrong."""
    values = read_stack_file(stack, path)
    return values, parse_stack_config(values, (path or stack_file(stack)).name)


def kubernetes_objects(resources: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for resource in resources:
        kind = str(resource["type"])
        if not kind.startswith(KUBERNETES_PREFIX) or kind.startswith(NOT_MANIFESTS):
            continue
        if resource["custom"] and "apiVersion" in resource["props"]:
            yield resource


def manifest_filename(obj: dict[str, Any]) -> str:
    metadata: dict[str, Any] = obj.get("metadata") or {}
    parts = [
        obj.get("kind", "object"),
        metadata.get("namespace") or "cluster",
        metadata.get("name", "unnamed"),
    ]
    return "-".join(str(p).lower().replace(".", "-") for p in parts) + ".yaml"


def as_integers(value: Any) -> Any:
    """Pulumi passes every number as a float (``replicas: 2.0``); the API server's integer fields reject
    ``2.0``, so a manifest states whole numbers as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: as_integers(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [as_integers(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def write_manifests(resources: list[dict[str, Any]], directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for resource in kubernetes_objects(resources):
        obj = as_integers(dict(resource["props"]))
        obj.setdefault("metadata", {}).setdefault("name", resource["name"])
        path = directory / manifest_filename(obj)
        if path.exists():
            raise ValueError(f"two Kubernetes objects render to {path.name}; names must be unique per kind")
        path.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
        count += 1
    return count


def check_policies(plan_json: dict[str, Any]) -> dict[str, Any]:
    """The policy pack's verdict: the same policy functions ``pulumi preview --policy-pack policy`` runs."""
    from policy.checker import check_plan  # imports pulumi_policy, only needed once there is a plan

    return check_plan(plan_json).to_json()


def write_plan(plan: Plan, out_dir: Path, progress: Progress) -> tuple[dict[str, Any], int]:
    """Write plan.json, manifests/ and policy.json; returns the policy verdict and manifest count."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    plan_json = plan.to_json()
    (out_dir / "plan.json").write_text(
        json.dumps(plan_json, indent=2, sort_keys=False) + "\n", encoding="utf-8"
    )
    manifests = write_manifests(plan.resources, out_dir / "manifests")
    progress(f"wrote plan.json ({len(plan.resources)} resources) and {manifests} manifests")
    verdict = check_policies(plan_json)
    (out_dir / "policy.json").write_text(json.dumps(verdict, indent=2) + "\n", encoding="utf-8")
    progress(f"policy pack: {len(verdict.get('violations', []))} violation(s)")
    return verdict, manifests


def default_out_dir(stack: str) -> Path:
    return REPO_ROOT / "build" / "plan" / stack
