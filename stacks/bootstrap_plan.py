"""The bootstrap project's offline plan: ``bootstrap/`` under the same Pulumi mocks as the platform's.

Like ``stacks plan``, it runs the real program (``bootstrap.program.main``) with
``pulumi.runtime.set_mocks``, captures every registration with the monitor of ``stacks.mocks`` and
writes ``build/bootstrap/<stack>/plan.json`` (secrets redacted, sorted by URN). The mocks answer as the
account named in the stack file, so ARNs in the plan are that account's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.config import PROJECT, BootstrapConfig, parse, read_stack_file, stack_file
from infra.config import REPO_ROOT
from stacks.mocks import PlanMocks, Registration
from stacks.plan import capture_under_mocks, resource_entries

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
        return resource_entries(self.registrations)

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


def _bootstrap_main() -> Callable[[], None]:
    from bootstrap.program import main

    return main


def run(stack: str, path: Path | None = None) -> BootstrapPlan:
    """Run ``bootstrap.program.main`` under mocks for ``bootstrap/Pulumi.<stack>.yaml`` (or ``path``)."""
    values, config = load(stack, path)
    capture = capture_under_mocks(
        BootstrapMocks(config.region, config.account_id),
        project=PROJECT,
        stack=stack,
        config_values=values,
        program=_bootstrap_main,
    )
    return BootstrapPlan(
        stack=stack, config=config, registrations=capture.registrations, outputs=capture.outputs
    )


def write(plan: BootstrapPlan, out_dir: Path | None = None) -> Path:
    target = out_dir or REPO_ROOT / "build" / "bootstrap" / plan.stack
    target.mkdir(parents=True, exist_ok=True)
    path = target / "plan.json"
    path.write_text(json.dumps(plan.to_json(), indent=2) + "\n", encoding="utf-8")
    return path
