"""Every alert's runbook_url points at a section that exists in docs/runbook.md."""

from __future__ import annotations

import re

import yaml

from infra.config import REPO_ROOT

RULES = REPO_ROOT / "components" / "assets" / "prometheus-rules.yaml"
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"


def test_every_alert_links_to_an_existing_runbook_section() -> None:
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', RUNBOOK.read_text(encoding="utf-8")))
    rules = [
        rule
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert rules
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        assert url.split("#", 1)[0].endswith("/docs/runbook.md"), url
        assert url.rsplit("#", 1)[-1] in anchors, f"{rule['alert']}: no section #{url.rsplit('#', 1)[-1]}"
