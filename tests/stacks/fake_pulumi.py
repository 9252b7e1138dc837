"""A stand-in for the `pulumi` CLI, placed first on PATH by the drift tests.

It answers the calls the Automation API makes (`version`, `stack select`, `refresh --preview-only`,
`preview --refresh --expect-no-changes`) with recorded outputs for one scenario, chosen by
FAKE_PULUMI_SCENARIO, and appends each argv to FAKE_PULUMI_LOG so tests can check what was asked:

- no-drift:        nothing changed anywhere
- out-of-band:     refresh finds a security group changed by hand; preview would put it back
- program-drift:   refresh finds nothing; preview would update the RDS instance (program differs)
- no-stack:        `stack select` fails: the stack does not exist
- no-credentials:  refresh fails: no AWS credentials
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

STACK_URN = "urn:pulumi:staging::ai-agents-platform::pulumi:pulumi:Stack::ai-agents-platform-staging"
SG_URN = "urn:pulumi:staging::ai-agents-platform::ai-agents:database:Database$aws:ec2/securityGroup:SecurityGroup::db-sg"
RDS_URN = "urn:pulumi:staging::ai-agents-platform::ai-agents:database:Database$aws:rds/instance:Instance::db"


def _step(op: str, urn: str, type_: str, diffs: list[str]) -> dict[str, Any]:
    return {
        "resourcePreEvent": {
            "metadata": {
                "op": op,
                "urn": urn,
                "type": type_,
                "provider": "",
                "diffs": diffs,
                "detailedDiff": {d: {"diffKind": "update", "inputDiff": op != "refresh"} for d in diffs},
            }
        }
    }


def _events(command: str, scenario: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    same = _step("same", STACK_URN, "pulumi:pulumi:Stack", [])
    if scenario == "out-of-band":
        step = _step("update", SG_URN, "aws:ec2/securityGroup:SecurityGroup", ["ingress"])
        return [same, step], {"same": 40, "update": 1}
    if scenario == "program-drift" and command == "preview":
        step = _step("update", RDS_URN, "aws:rds/instance:Instance", ["backupRetentionPeriod"])
        return [same, step], {"same": 40, "update": 1}
    return [same], {"same": 41}


def _write_event_log(path: str, events: list[dict[str, Any]], summary: dict[str, int]) -> None:
    with Path(path).open("a", encoding="utf-8") as log:
        for sequence, event in enumerate(
            [*events, {"summaryEvent": {"resourceChanges": summary}}, {"cancelEvent": {}}]
        ):
            log.write(json.dumps({"sequence": sequence, "timestamp": int(time.time()), **event}) + "\n")


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def main(argv: list[str]) -> int:
    scenario = os.environ.get("FAKE_PULUMI_SCENARIO", "no-drift")
    with Path(os.environ["FAKE_PULUMI_LOG"]).open("a", encoding="utf-8") as calls:
        calls.write(json.dumps(argv) + "\n")
    # Global flags such as --non-interactive come before the command.
    argv = [arg for arg in argv if arg != "--non-interactive"]
    command = argv[0] if argv else ""
    if command == "version":
        print("v3.205.0")  # file-based event log (newer CLIs stream events over gRPC instead)
        return 0
    if command == "stack" and argv[1:2] == ["select"]:
        if scenario == "no-stack":
            print(f"error: no stack named '{_option(argv, '--stack')}' found", file=sys.stderr)
            return 255
        return 0
    if command in ("refresh", "preview"):
        if scenario == "no-credentials":
            print("error: No valid credential sources found for AWS Provider.", file=sys.stderr)
            return 255
        events, summary = _events(command, scenario)
        log = _option(argv, "--event-log")
        if log:
            _write_event_log(log, events, summary)
        changed = any(e["resourcePreEvent"]["metadata"]["op"] != "same" for e in events)
        if command == "preview" and "--expect-no-changes" in argv and changed:
            print("error: no changes were expected but changes were proposed", file=sys.stderr)
            return 255
        return 0
    print(f"fake pulumi: unexpected call {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
