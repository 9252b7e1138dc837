"""The program across change, not at one moment: what a later deploy, upgrade or rollback would do to
what the previous one left, judged by ``stacks diff`` on plans whose state holds what the providers
report (docs/offline-plan.md, "The lifecycle sequence")."""

from __future__ import annotations

import pytest

from policy.stack import DELETION_PROTECTION, STATEFUL
from tests.infra.harness import Captured, run_stack


@pytest.fixture(scope="module")
def production() -> Captured:
    return run_stack("production")


def test_production_protects_every_stateful_resource(production: Captured) -> None:
    """Cluster, database, broker, keys, repositories and secrets: the engine refuses to delete or replace
    them, and the cluster refuses deletion itself."""
    stateful = [r for r in production.registrations if r.type in STATEFUL]
    assert {r.type for r in stateful} == set(STATEFUL)
    assert [r.name for r in stateful if not r.protect] == []
    for registration in stateful:
        if switch := DELETION_PROTECTION.get(registration.type):
            assert registration.inputs[switch] is True, registration.name
