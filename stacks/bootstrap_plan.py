"""The bootstrap project's offline plan: ``bootstrap/`` under the same Pulumi mocks as the platform's.

Like ``stacks plan``, it runs the real program (``bootstrap.program.main``) with
``pulumi.runtime.set_mocks``, captures every registration with the monitor of ``stacks.mocks`` and
writes ``build/bootstrap/<stack>/plan.json`` (secrets redacted, sorted by URN). The mocks answer as the
account named in the stack file, so ARNs in the plan are that account's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.config import PROJECT, BootstrapConfig, parse, read_stack_file, stack_file
from infra.config import REPO_ROOT
from stacks.mocks import CapturingMonitor, PlanMocks, Registration
from stacks.plan import SECRET, redact

OIDC_HOST = "token.actions.githubusercontent.com"
CALLER_IDENTITY = "aws:index/getCallerIdentity:getCallerIdentity"


class BootstrapMocks(PlanMocks):
    """The platform's mocks, answering as the bootstrapped account (IAM, KMS and S3 shaped for it)."""

    def __init__(self, region: str, account: str) -> None:
        super().__init__(region)
        self.account = account

    def new_resource(self, args: Any) -> tuple[str | None, dict[Any, Any]]:
        rid, outputs = super().new_resource(args)
        name = str(outputs.get("name") or args.name)
        match args.typ:
            case "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
                arn = f"arn:aws:iam::{self.account}:oidc-provider/{OIDC_HOST}"
                return arn, {**outputs, "arn": arn}
            case "aws:iam/role:Role":
                return rid, {**outputs, "arn": f"arn:aws:iam::{self.account}:role/{name}"}
            case "aws:kms/key:Key":
                return rid, {**outputs, "arn": f"arn:aws:kms:{self.region}:{self.account}:key/{rid}"}
            case "aws:s3/bucket:Bucket":
                bucket = str(outputs.get("bucket") or name)
                return bucket, {**outputs, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}
            case _:
                return rid, outputs

    def call(self, args: Any) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        if args.token == CALLER_IDENTITY:
            arn = f"arn:aws:iam::{self.account}:role/bootstrap-admin"
            return {"accountId": self.account, "arn": arn, "userId": "AROAMOCK", "id": self.account}, []
        return super().call(args)


@dataclass(frozen=True)
class BootstrapPlan:
    stack: str
    config: BootstrapConfig
    registrations: list[Registration]
    outputs: dict[str, Any]

    def resources(self) -> list[dict[str, Any]]:
        entries = [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent or None,
                "provider": r.provider.rsplit("::", 1)[0] if r.provider else None,
                "dependsOn": r.depends_on,
                "protect": r.protect,
                "props": redact(r.inputs),
            }
            for r in self.registrations
        ]
        return sorted(entries, key=lambda e: str(e["urn"]))

    def to_json(self) -> dict[str, Any]:
        return {
            "project": PROJECT,
            "stack": self.stack,
            "resources": self.resources(),
            "outputs": self.outputs,
        }


def load(stack: str, path: Path | None = None) -> tuple[dict[str, Any], BootstrapConfig]:
    path = path or stack_file(stack)
    values = read_stack_file(path)
    return values, parse(values, path.name)


def run(stack: str, path: Path | None = None) -> BootstrapPlan:
    """Run ``bootstrap.program.main`` under mocks for ``bootstrap/Pulumi.<stack>.yaml`` (or ``path``)."""
    values, config = load(stack, path)
    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await  # pyright: ignore[reportPrivateUsage]

    monitor = CapturingMonitor(BootstrapMocks(config.region, config.account_id))
    settings.reset_options()
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    set_all_config(
        {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}
    )

    from bootstrap.program import main

    _sync_await(run_pulumi_func(main))
    root = settings.get_root_resource()
    outputs: dict[str, Any] = {}
    for key, value in (getattr(root, "outputs", {}) or {}).items():
        output: pulumi.Output[Any] = pulumi.Output.from_input(value)
        outputs[key] = SECRET if _sync_await(output.is_secret()) else _sync_await(output.future())
    return BootstrapPlan(
        stack=stack, config=config, registrations=list(monitor.registrations), outputs=outputs
    )


def write(plan: BootstrapPlan, out_dir: Path | None = None) -> Path:
    target = out_dir or REPO_ROOT / "build" / "bootstrap" / plan.stack
    target.mkdir(parents=True, exist_ok=True)
    path = target / "plan.json"
    path.write_text(json.dumps(plan.to_json(), indent=2) + "\n", encoding="utf-8")
    return path
