"""The mutation report counts what mutmut recorded, per module, within the scope asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mutation import report


def _meta(root: Path, module: str, codes: dict[str, int | None]) -> None:
    path = root / f"{module}.meta"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": codes}), encoding="utf-8")


@pytest.fixture
def mutants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "mutants"
    _meta(
        root,
        "policy/rds.py",
        {
            "policy.rds.x__a__mutmut_1": 1,  # killed
            "policy.rds.x__a__mutmut_2": 36,  # timeout: counts as killed
            "policy.rds.x__a__mutmut_3": 0,  # survived
            "policy.rds.x__a__mutmut_4": 33,  # no tests: lived
            "policy.rds.x__a__mutmut_5": None,  # not run
        },
    )
    _meta(root, "app/signing.py", {"app.signing.x_sign__mutmut_1": 1})
    monkeypatch.setattr(report, "MUTANTS", root)
    return root


def test_statuses_are_grouped_by_module_and_filtered_by_glob(mutants: Path) -> None:
    assert report.results(mutants, ["app.*"]) == {
        "app/signing.py": {"app.signing.x_sign__mutmut_1": "killed"}
    }
    assert set(report.results(mutants, [])) == {"app/signing.py", "policy/rds.py"}


def test_kill_rate_is_over_the_mutants_run_and_survivors_are_listed(
    mutants: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report.main(["policy.rds.*", "--min-kill-rate", "50"]) == 0
    out = capsys.readouterr().out
    assert "| policy/rds.py | 5 | 1 | 1 | 1 | 1 | 1 | 50.0 % |" in out
    assert "policy.rds.x__a__mutmut_3\n" in out and "policy.rds.x__a__mutmut_4\n" in out
    assert "mutmut_1\n" not in out


def test_a_module_below_the_threshold_fails(mutants: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["policy.*"]) == 1
    assert "below 90 %: policy/rds.py" in capsys.readouterr().out


def test_no_results_is_an_error_not_a_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "MUTANTS", tmp_path / "nothing")
    assert report.main([]) == 2
