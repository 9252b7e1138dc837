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
