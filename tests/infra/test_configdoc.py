"""docs/configuration.md is generated from the model; it must match, and every key must be described."""

from __future__ import annotations

from stacks.configdoc import DOC_PATH, render, undocumented_fields


def test_every_config_key_has_a_description() -> None:
    assert undocumented_fields() == []


def test_configuration_reference_is_current() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), "run: python -m stacks config-doc"


def test_reference_shows_both_stacks_values() -> None:
    text = render()
    assert "| `multiAz` | " in text
    assert "`db.r6g.large` | `db.t4g.medium`" in text  # production, then staging instance class


def test_every_table_row_is_one_line_with_its_columns() -> None:
    """A docstring's line break used to end its row mid-sentence (and orphan the rest of the cell)."""
    rows = [line for line in render().splitlines() if line.startswith("| `")]
    assert rows
    for row in rows:
        cells = row.replace("\\|", "").count("|") - 1
        assert cells in (4, 5), row  # key, description, default, two stacks; or key, default, two stacks


def test_the_bootstrap_projects_keys_are_documented_with_the_example_values() -> None:
    text = render().split("## The bootstrap project", 1)[1]
    assert "| `runners.<stack>.vpcId` | The stack's VPC" in text
    assert (
        '`["vpc-0a1b2c3d4e5f60718", "vpc-0f1e2d3c4b5a69788"]`' in text
    )  # from bootstrap/Pulumi.account.yaml
    assert "| `github.productionReviewers.teams` |" in text
    assert (
        "| `github.defaultBranch` | The only branch the deploy and drift environments accept. | `main` | not set |"
        in text
    )
