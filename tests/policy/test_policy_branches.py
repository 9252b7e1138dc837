"""Every further violation branch of a policy, reported exactly (tests/policy/branch_cases.py, and
tests/policy/gateway_branch_cases.py for the edge)."""

from __future__ import annotations

import pytest

from policy.pack import POLICIES
from policy.workloads import image_tag, pod_spec
from tests.policy.branch_cases import ALLOWED as OTHER_ALLOWED
from tests.policy.branch_cases import BRANCH_CASES as OTHER_BRANCH_CASES
from tests.policy.branch_cases import Allowed, BranchCase
from tests.policy.cases import C0, DEPLOY, RDS, Case, compliant_plan, find, insecure_plan, set_path, urn
from tests.policy.gateway_branch_cases import GATEWAY_ALLOWED, GATEWAY_BRANCH_CASES
from tests.policy.support import BY_NAME, fix, validate_resource, validate_stack, violations

BRANCH_CASES = [*OTHER_BRANCH_CASES, *GATEWAY_BRANCH_CASES]
ALLOWED = [*OTHER_ALLOWED, *GATEWAY_ALLOWED]


def test_branch_cases_name_real_policies_and_distinct_branches() -> None:
    assert {c.policy for c in BRANCH_CASES} | {a.policy for a in ALLOWED} <= {p.name for p in POLICIES}
    for ids in ([c.id for c in BRANCH_CASES], [a.id for a in ALLOWED]):
        assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", BRANCH_CASES, ids=lambda c: c.id)
def test_each_branch_is_reported_exactly(case: BranchCase) -> None:
    policy = BY_NAME[case.policy]
    found = violations(policy, insecure_plan(case), stack=case.stack)
    assert found == [(fix(policy, case.detail), case.reported_urn())]


@pytest.mark.parametrize("allowed", ALLOWED, ids=lambda a: a.id)
def test_the_other_side_of_a_branch_is_not_reported(allowed: Allowed) -> None:
    plan = insecure_plan(Case(allowed.policy, allowed.target, allowed.change, ""))
    assert violations(BY_NAME[allowed.policy], plan) == []


def test_multi_az_required_by_the_stack_knob_says_so() -> None:
    """Outside production only the stack's rdsRequireMultiAz asks for Multi-AZ, and the message names it."""
    policy = BY_NAME["rds-multi-az"]
    props = dict(find(compliant_plan(), *RDS)["props"], multiAz=False)
    found = validate_resource(
        policy, RDS[0], props, name="db", stack="staging", config={"rdsRequireMultiAz": True}
    )
    assert found == [
        fix(
            policy,
            "RDS instance db is single-AZ in this stack (rdsRequireMultiAz): an AZ outage takes the database down.",
        )
    ]


def test_cpu_limits_are_required_only_where_the_stack_knob_asks_for_them() -> None:
    policy = BY_NAME["k8s-resources-set"]
    container = dict(find(compliant_plan(), *DEPLOY)["props"]["spec"]["template"]["spec"]["containers"][0])
    container["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    props = {"spec": {"template": {"spec": {"containers": [container]}}}}
    assert validate_resource(policy, DEPLOY[0], props, name="api") == []
    assert validate_resource(policy, DEPLOY[0], props, name="api", config={"requireCpuLimits": True}) == [
        fix(policy, "api: container api sets no resources.limits.cpu.")
    ]


@pytest.mark.parametrize(
    ("patterns", "reported"),
    [((), True), (("edge/*",), True), (("ai-agents/*",), False), (("ai-agents/api", "x/y"), False)],
)
def test_load_balancer_services_the_knob_names_by_namespace_and_name_are_allowed(
    patterns: tuple[str, ...], reported: bool
) -> None:
    policy = BY_NAME["k8s-no-load-balancer-service"]
    service = {"metadata": {"name": "api", "namespace": "ai-agents"}, "spec": {"type": "LoadBalancer"}}
    found = validate_resource(
        policy,
        "kubernetes:core/v1:Service",
        service,
        name="api",
        config={"loadBalancerServices": list(patterns)},
    )
    message = "Service ai-agents/api is of type LoadBalancer: it gets its own internet-facing load balancer."
    assert found == ([fix(policy, message)] if reported else [])


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("api", None),
        ("api:1.4.2", "1.4.2"),
        ("registry.example.com:5000/team/api", None),  # a registry's port is not a tag
        ("registry.example.com:5000/team/api:1.4.2", "1.4.2"),
        ("registry.example.com:5000/api", None),
        ("team/api:1.4.2@sha256:" + "a" * 64, "1.4.2"),
        ("team/api@sha256:" + "a" * 64, None),
    ],
)
def test_image_tag_reads_the_tag_after_the_last_path_component(image: str, tag: str | None) -> None:
    assert image_tag(image) == tag


def test_only_workloads_have_a_pod_spec() -> None:
    assert pod_spec("kubernetes:core/v1:Service", {"spec": {"template": {"spec": {"containers": []}}}}) == {}
    assert pod_spec(
        "kubernetes:batch/v1:CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"a": 1}}}}}}
    ) == {"a": 1}


@pytest.mark.parametrize(
    ("registries", "reported"),
    [
        ((), True),
        (("ghcr.io/other/",), True),
        (("ghcr.io/vetted/",), False),
        (("quay.io/x/", "ghcr.io/"), False),
    ],
)
def test_images_under_a_registry_the_knob_lists_are_allowed(
    registries: tuple[str, ...], reported: bool
) -> None:
    policy = BY_NAME["images-from-stack-ecr"]
    plan = compliant_plan()
    image = "ghcr.io/vetted/api:1.4.2"
    set_path(find(plan, *DEPLOY)["props"], f"{C0}.image", image)
    found = validate_stack(policy, plan, config={"extraImageRegistries": list(registries)})
    message = f"api: image {image} does not come from this stack's ECR."
    assert found == ([(fix(policy, message), urn(*DEPLOY))] if reported else [])
