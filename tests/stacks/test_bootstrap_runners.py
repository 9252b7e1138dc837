"""The CI runners of the bootstrap: CodeBuild projects in each stack's private subnets, named as the
workflows' ``runs-on`` labels say, HTTPS out only, and the whole bootstrap plan clean under the pack."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from bootstrap.config import BootstrapConfigError, parse, read_stack_file, stack_file
from bootstrap.runners import RUNNER_IMAGE, runner_project_name
from infra.config import REPO_ROOT
from stacks.bootstrap_plan import BootstrapPlan, run
from stacks.plan import check_policies

STACKS = ("staging", "production")
WORKFLOWS = REPO_ROOT / ".github" / "workflows"


@pytest.fixture(scope="module")
def plan() -> BootstrapPlan:
    return run("account")


def props(plan: BootstrapPlan, type_: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r["props"] for r in plan.resources() if r["type"] == type_}


def test_the_bootstrap_plan_is_clean_under_the_pack(plan: BootstrapPlan) -> None:
    verdict = check_policies(plan.to_json())
    assert [v for v in verdict["violations"] if v["enforcementLevel"] == "mandatory"] == []


@pytest.mark.parametrize("stack", STACKS)
def test_runner_is_a_codebuild_project_in_the_stacks_private_subnets(plan: BootstrapPlan, stack: str) -> None:
    settings = next(r for s, r in plan.config.runners.items() if s == stack)
    name = runner_project_name("ai-agents", stack)
    project = props(plan, "aws:codebuild/project:Project")[f"{name}-project"]
    assert project["name"] == name
    assert project["vpcConfig"]["vpcId"] == settings.vpc_id
    assert project["vpcConfig"]["subnets"] == settings.subnet_ids
    assert (
        project["environment"]["image"] == RUNNER_IMAGE and project["environment"]["privilegedMode"] is False
    )
    assert project["source"]["auth"] == {
        "type": "CODECONNECTIONS",
        "resource": plan.config.codebuild_connection_arn,
    }
    webhook = props(plan, "aws:codebuild/webhook:Webhook")[f"{name}-webhook"]
    assert webhook["filterGroups"] == [{"filters": [{"type": "EVENT", "pattern": "WORKFLOW_JOB_QUEUED"}]}]


@pytest.mark.parametrize("stack", STACKS)
def test_runner_sends_https_out_only_and_admits_nothing(plan: BootstrapPlan, stack: str) -> None:
    name = runner_project_name("ai-agents", stack)
    group = props(plan, "aws:ec2/securityGroup:SecurityGroup")[f"{name}-sg"]
    assert not group.get("ingress") and not group.get("egress"), "rules are separate resources"
    (egress,) = [
        p
        for n, p in props(plan, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule").items()
        if n.startswith(name)
    ]
    assert (egress["ipProtocol"], egress["fromPort"], egress["toPort"]) == ("tcp", 443, 443)
    assert not [
        n
        for n in props(plan, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if n.startswith(name)
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_runner_role_only_logs_and_places_its_interface(plan: BootstrapPlan, stack: str) -> None:
    name = runner_project_name("ai-agents", stack)
    role = props(plan, "aws:iam/role:Role")[f"{name}-role"]
    (trust,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": plan.config.account_id}}
    policy = json.loads(props(plan, "aws:iam/rolePolicy:RolePolicy")[f"{name}-role"]["policy"])
    actions = {
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {a.split(":")[0] for a in actions} == {"logs", "ec2"}
    assert not any(a.startswith(("sts:", "iam:", "eks:")) for a in actions), "jobs assume their roles by OIDC"
    assert props(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").get(f"{name}-role") is None


def test_workflows_that_reach_the_cluster_name_a_runner_project() -> None:
    expected = {
        "deploy-stack.yml": ("up", "${{ inputs.stack }}"),
        "drift.yml": ("drift", "${{ matrix.stack }}"),
        "preview.yml": ("cloud", "${{ matrix.stack }}"),
    }
    for file, (job, stack) in expected.items():
        runs_on = yaml.safe_load((WORKFLOWS / file).read_text())["jobs"][job]["runs-on"]
        label = f"codebuild-{runner_project_name('ai-agents', stack)}-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}"
        assert runs_on == label, file
    offline = yaml.safe_load((WORKFLOWS / "preview.yml").read_text())["jobs"]["offline"]
    assert offline["runs-on"] == "ubuntu-latest", "fork PRs keep the offline preview on GitHub's runners"


def _settings(**changes: Any) -> dict[str, Any]:
    values = read_stack_file(stack_file("account"))
    settings = dict(values["ai-agents-bootstrap:settings"])
    settings.update(changes)
    return {"ai-agents-bootstrap:settings": settings}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"codebuildConnectionArn": None}, "codebuildConnectionArn: is required when runners are set"),
        ({"stacks": ["staging"]}, "runners: ['production'] are not in stacks"),
        (
            {"runners": {"staging": {"vpcId": "vpc-0a1b2c3d4e5f60718", "subnetIds": ["sub-1"]}}},
            "runners.staging.subnetIds: Value error, 'sub-1' is not a subnet id",
        ),
    ],
)
def test_runner_config_errors_name_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BootstrapConfigError) as caught:
        parse(_settings(**changes), "Pulumi.account.yaml")
    assert str(caught.value).endswith(message)


def test_without_runners_no_codebuild() -> None:
    config = parse(_settings(runners={}, codebuildConnectionArn=None), "Pulumi.account.yaml")
    assert config.runners == {}
