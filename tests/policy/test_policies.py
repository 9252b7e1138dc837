"""Every policy: one insecure change of the compliant plan is reported exactly; the compliant plan is not."""

from __future__ import annotations

import pytest
from pulumi_policy import EnforcementLevel, Policy

from policy.pack import MODULES, POLICIES
from tests.policy.cases import CASES, Case, compliant_plan, insecure_plan
from tests.policy.support import BY_NAME, fix, violations


def test_at_least_forty_uniquely_named_policies_each_with_a_case() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names)) >= 40
    assert {c.policy for c in CASES} == set(names)
    assert sum(len(p) for p in MODULES.values()) == len(POLICIES)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_every_policy_says_what_is_insecure_and_how_to_fix_it(policy: Policy) -> None:
    assert "Fix: " in policy.description and len(policy.description) > 40
    assert policy.remediation_steps
    assert policy.enforcement_level == EnforcementLevel.MANDATORY


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_insecure_change_is_reported_exactly(case: Case) -> None:
    policy = BY_NAME[case.policy]
    found = violations(policy, insecure_plan(case), stack=case.stack)
    assert found == [(fix(policy, case.detail), case.reported_urn())]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_compliant_plan_passes(case: Case) -> None:
    assert violations(BY_NAME[case.policy], compliant_plan(), stack=case.stack) == []
