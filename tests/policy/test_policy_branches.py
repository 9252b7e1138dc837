"""Every further violation branch of a policy, reported exactly (tests/policy/branch_cases.py)."""

from __future__ import annotations

import pytest

from policy.pack import POLICIES
from tests.policy.branch_cases import ALLOWED, BRANCH_CASES, Allowed, BranchCase
from tests.policy.cases import Case, insecure_plan
from tests.policy.support import BY_NAME, fix, violations


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
