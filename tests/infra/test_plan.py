"""`python -m stacks plan`: both stacks plan, the output has the contract's shape, secrets never leak,
and a broken stack file is exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import REPO_ROOT, read_stack_file
from stacks.mocks import SECRET_SIG, SECRET_VALUE
from stacks.plan import SECRET, redact
from tests.infra.harness import run_stack

RESOURCE_KEYS = {"urn", "type", "name", "parent", "provider", "dependsOn", "protect", "props"}


def plan_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stacks", "plan", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module", params=["staging", "production"])
def planned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    stack = str(request.param)
    out = tmp_path_factory.mktemp(stack)
    result = plan_cli(stack, "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return stack, out


def test_plan_writes_every_artifact(planned: tuple[str, Path]) -> None:
    _, out = planned
    assert {p.name for p in out.iterdir()} == {
        "plan.json",
        "manifests",
        "policy.json",
        "plan.md",
        "cost.json",
    }
    markdown = (out / "plan.md").read_text()
    assert "```mermaid" in markdown and "## Policy" in markdown


def test_plan_prices_every_resource_and_fits_a_pr_comment(planned: tuple[str, Path]) -> None:
    # `stacks plan` exits 2 on a type without a price, so the fixture's plan succeeding proves the
    # table covers every priced type the stack uses; here, that the section is there and fits.
    from stacks.comment import COMMENT_LIMIT

    _, out = planned
    cost = json.loads((out / "cost.json").read_text())
    assert cost["monthlyUsd"] > 0 and cost["region"] == "eu-west-1"
    kinds = {line["type"] for line in cost["lines"]}
    assert {"eks:index:Cluster", "eks:index:ManagedNodeGroup", "aws:rds/instance:Instance"} <= kinds
    markdown = (out / "plan.md").read_text()
    assert "## Estimated monthly cost" in markdown and len(markdown) < COMMENT_LIMIT


def test_plan_json_has_the_contract_shape(planned: tuple[str, Path]) -> None:
    stack, out = planned
    plan = json.loads((out / "plan.json").read_text())
    assert plan["project"] == "ai-agents-platform" and plan["stack"] == stack
    assert len(plan["resources"]) > 30
    urns = {r["urn"] for r in plan["resources"]}
    for resource in plan["resources"]:
        assert resource.keys() >= RESOURCE_KEYS
        assert resource["urn"].startswith(f"urn:pulumi:{stack}::ai-agents-platform::")
        assert all(dep in urns for dep in resource["dependsOn"]), resource["urn"]
    # Custom AWS resources are bound to the explicit provider, never the ambient default one.
    aws = [r for r in plan["resources"] if r["type"].startswith("aws:") and r["custom"]]
    assert aws and all(r["provider"] and r["provider"].endswith("::aws") for r in aws)


def test_props_use_the_engines_camel_case_names(planned: tuple[str, Path]) -> None:
    _, out = planned
    plan = json.loads((out / "plan.json").read_text())
    vpc = next(r for r in plan["resources"] if r["type"] == "aws:ec2/vpc:Vpc")
    assert vpc["props"]["enableDnsHostnames"] is True and "enable_dns_hostnames" not in vpc["props"]


def test_manifests_are_one_kubernetes_object_per_file(planned: tuple[str, Path]) -> None:
    _, out = planned
    for path in (out / "manifests").glob("*.yaml"):
        documents = list(yaml.safe_load_all(path.read_text()))
        assert len(documents) == 1 and {"apiVersion", "kind", "metadata"} <= documents[0].keys(), path.name


def _secret_values(value: Any) -> list[str]:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return [json.dumps(value["value"]) if not isinstance(value["value"], str) else value["value"]]
        return [s for v in value.values() for s in _secret_values(v)]
    if isinstance(value, list):
        return [s for v in value for s in _secret_values(v)]
    return []


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_secret_inputs_are_redacted_everywhere(stack: str, tmp_path: Path) -> None:
    result = plan_cli(stack, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    # Every value the program marked secret, as the engine received it, appears nowhere in the output.
    captured = run_stack(stack)
    secrets = {s for r in captured.registrations for s in _secret_values(r.inputs) if len(s) >= 8}
    for secret in secrets:
        assert secret not in written
    assert written.count(SECRET) >= len(secrets)


def test_redact_replaces_nested_secrets_only() -> None:
    wrapped = {SECRET_SIG: SECRET_VALUE, "value": "hunter2-hunter2"}
    props = {"a": 1, "b": [wrapped, "plain"], "c": {"d": wrapped}}
    assert redact(props) == {"a": 1, "b": [SECRET, "plain"], "c": {"d": SECRET}}


def test_two_plans_of_the_same_program_are_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert plan_cli("staging", "--out", str(first)).returncode == 0
    assert plan_cli("staging", "--out", str(second)).returncode == 0
    assert (first / "plan.json").read_text() == (second / "plan.json").read_text()


BROKEN = [
    ("staging", "unknown", "Pulumi.staging.yaml: ai-agents-platform:clusterr: unknown key"),
    (
        "staging",
        "cidr",
        "Pulumi.staging.yaml: ai-agents-platform:network.vpcCidr: '10.20.0.0/99' is not a valid CIDR block",
    ),
    (
        "production",
        "multiaz",
        "Pulumi.production.yaml: ai-agents-platform:database.multiAz: must be true in production",
    ),
]


def _break(stack: str, how: str) -> dict[str, Any]:
    config = read_stack_file(stack)
    if how == "unknown":
        config["ai-agents-platform:clusterr"] = {}
    elif how == "cidr":
        config["ai-agents-platform:network"]["vpcCidr"] = "10.20.0.0/99"
    else:
        config["ai-agents-platform:database"]["multiAz"] = False
    return {"config": config}


@pytest.mark.parametrize(("stack", "how", "message"), BROKEN, ids=[b[1] for b in BROKEN])
def test_broken_stack_file_is_exit_2_with_one_line(
    stack: str, how: str, message: str, tmp_path: Path
) -> None:
    broken = tmp_path / f"Pulumi.{stack}.yaml"
    broken.write_text(yaml.safe_dump(_break(stack, how)))
    result = plan_cli(stack, "--stack-file", str(broken), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {message}"]
    assert not (tmp_path / "out").exists(), "nothing is written for an invalid stack"


def test_unknown_stack_is_exit_2() -> None:
    result = plan_cli("qa")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: Pulumi.qa.yaml: no such stack file (stacks: production, staging)"


def test_component_graph_has_one_node_per_component() -> None:
    from stacks.report import component_graph

    resources = [
        {"urn": "urn:pulumi:s::p::a:keys:Keys::same", "type": "a:keys:Keys", "name": "same", "custom": False},
        {
            "urn": "urn:pulumi:s::p::a:net:Network::same",
            "type": "a:net:Network",
            "name": "same",
            "custom": False,
        },
    ]
    graph = component_graph(resources)
    nodes = [line for line in graph.splitlines() if '["' in line]
    assert len({line.split("[", 1)[0].strip() for line in nodes}) == 2
