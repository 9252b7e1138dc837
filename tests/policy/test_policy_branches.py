"""Every further violation branch of a policy, reported exactly (tests/policy/branch_cases.py)."""

from __future__ import annotations

import pytest

from policy.pack import POLICIES
from tests.policy.branch_cases import ALLOWED, BRANCH_CASES, Allowed, BranchCase
from tests.policy.cases import RDS, Case, compliant_plan, find, insecure_plan
from tests.policy.support import BY_NAME, fix, validate_resource, violations


def test_branch_cases_name_real_policies_and_distinct_branches() -> None:
    assert {c.policy for c in BRANCH_CASES} <= {p.name for p in POLICIES}
    ids = [c.id for c in BRANCH_CASES]
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
