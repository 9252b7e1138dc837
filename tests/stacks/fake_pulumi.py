"""A stand-in for the `pulumi` CLI, placed first on PATH by the drift tests.

It answers the calls the Automation API makes (`version`, `stack select`, `refresh --preview-only`,
`preview --refresh --expect-no-changes`) the way the current CLI does, for one scenario chosen by
FAKE_PULUMI_SCENARIO, and appends each argv to FAKE_PULUMI_LOG so tests can check what was asked:

- no-drift:        nothing changed anywhere
- out-of-band:     refresh finds a security group changed by hand and a log group deleted by hand;
                   the preview would put both back
- program-drift:   refresh finds nothing; the preview would update the RDS instance and replace the
                   log group (the program differs)
- preview-fails:   refresh finds nothing; the preview plans an update, then the program fails
- no-stack:        `stack select` fails: the stack does not exist
- no-backend:      `stack select` fails: no backend selected (the CLI falls back to Pulumi Cloud)
- no-credentials:  refresh fails: the AWS provider finds no credentials
- old-cli:         `pulumi version` reports a CLI older than the SDK's minimum (3.1.0)

What makes it the current CLI, with where each piece comes from:

- Version: it reports v3.272.0, the CLI release matching the Python SDK `make deps` installs from
  pyproject's `pulumi>=3.200,<4` (pulumi 3.272.0, the version `PulumiCommand.install` would fetch);
  pulumi/pulumi-command v1.3.0's dependency update "v3.272.0 -> v3.273.0" (2026-10-28, checked
  2026-12-02) shows both CLI releases exist, and the workflow's pulumi/actions installs the newest.
  The SDK streams events over gRPC for any CLI newer than 3.205.0 (pulumi/automation/_stack.py
  `_setup_event_log`), so this stand-in takes the path every real run takes.
- Transport: the SDK starts an in-process `pulumirpc.Events` server and passes `--event-log
  tcp://127.0.0.1:PORT`; the CLI connects to it and sends each engine event as one JSON document in an
  `EventRequest` on the client stream `StreamEvents`, the cancel event last, then closes the stream
  (pulumi/pulumi pkg/backend/display/display.go `startEventLogger`). The stand-in does the same with
  the SDK's own generated stubs (pulumi.runtime.proto.events_pb2[_grpc]) and refuses a file path.
- Event shapes: field names from sdk/go/common/apitype/events.go (EngineEvent, StepEventMetadata,
  StepEventStateMetadata, DiagnosticEvent, SummaryEvent with `result` since CLI 3.237.0); the order of
  events from recorded engine streams in pkg/engine/lifecycletest/testdata/output/:
  * a refresh reports each resource first as a resourcePreEvent with op "refresh" and no diff, and
    only the later resOutputsEvent carries the result: op "same", "update" (with `diffs` and
    `detailedDiff`) or "delete" (TestRefreshBasics/0-0-0-preview/eventstream.json; the op comes from
    RefreshStep.ResultOp in pkg/resource/deploy/step.go, swapped in by previewActions.OnResourceStepPost
    in pkg/engine/update.go);
  * `preview --refresh` reports the refresh steps with op "refresh" in both events and then the planned
    step (op "update" with diffs) in a resourcePreEvent and a resOutputsEvent
    (TestPreviewRefreshWithProgram/1/eventstream.json);
  * a preview that fails after planning a change: the planned step, an error diagnosticEvent, a summary
    with result "failed" (TestAliasURNs/urn-fail-duplicate-0-0-preview/eventstream.json).
  All at pulumi/pulumi 1b5949891b3cefcb9974752b24a5ecef0acc86c8 (master, 2026-08-21, after v3.259.0).
- Exit codes and messages: the CLI's exit code taxonomy since 3.227.0 (pkg/cmd/pulumi/cmd/exit_codes.go:
  1 failed operation, 3 authentication, 6 stack not found, 7 --expect-no-changes saw changes), the
  messages of pkg/backend/backenderr/backenderr.go, and the AWS provider's missing-credentials
  diagnostic (pulumi/pulumi-aws#3310). A failed operation prints its diagnostics on stdout and nothing
  on stderr (the error is a "bail").
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

CLI_VERSION = "v3.272.0"

PROJECT = "urn:pulumi:staging::ai-agents-platform::"
STACK_URN = PROJECT + "pulumi:pulumi:Stack::ai-agents-platform-staging"
PROVIDER_URN = PROJECT + "pulumi:providers:aws::default_7_12_0"
PROVIDER_REF = PROVIDER_URN + "::04da6b54-80e4-46f7-96ec-b56ff0331ba9"
# A URN's type chain names the parents below the stack (the stack itself is left out).
DB_URN = PROJECT + "ai-agents:database:Database::db"
SG_URN = PROJECT + "ai-agents:database:Database$aws:ec2/securityGroup:SecurityGroup::db-sg"
RDS_URN = PROJECT + "ai-agents:database:Database$aws:rds/instance:Instance::db"
LOG_URN = PROJECT + "aws:cloudwatch/logGroup:LogGroup::api-logs"

# (type, urn, id, parent)
Resource = tuple[str, str, str, str]
STACK: Resource = ("pulumi:pulumi:Stack", STACK_URN, "", "")
SG: Resource = ("aws:ec2/securityGroup:SecurityGroup", SG_URN, "sg-0a1b2c3d4e5f60718", DB_URN)
RDS: Resource = ("aws:rds/instance:Instance", RDS_URN, "ai-agents-staging", DB_URN)
LOG: Resource = ("aws:cloudwatch/logGroup:LogGroup", LOG_URN, "/ai-agents/staging/api", STACK_URN)
ALL = [STACK, SG, RDS, LOG]

CREDENTIALS_ERROR = (
    "pulumi:providers:aws resource 'default_7_12_0' has a problem: No valid credential sources found.\n"
    "Please see https://www.pulumi.com/registry/packages/aws/installation-configuration/ "
    "for more information about providing credentials.\n"
)
PROGRAM_ERROR = (
    "Program failed with an unhandled exception:\n"
    "Traceback (most recent call last):\n"
    '  File "infra/__main__.py", line 12, in <module>\n'
    "ValueError: stacks/staging.yaml: database.instanceClass: Input should be a valid string\n"
)


def _state(resource: Resource) -> dict[str, Any]:
    type_, urn, id_, parent = resource
    custom = type_ != "pulumi:pulumi:Stack"
    state: dict[str, Any] = {"type": type_, "urn": urn, "id": id_, "parent": parent}
    state |= {"inputs": {}, "outputs": {}, "provider": PROVIDER_REF if custom else ""}
    if custom:
        state["custom"] = True
    return state


def _metadata(
    op: str,
    resource: Resource,
    diffs: list[str] | None = None,
    *,
    deleted: bool = False,
) -> dict[str, Any]:
    type_, urn, _, _ = resource
    metadata: dict[str, Any] = {
        "op": op,
        "urn": urn,
        "type": type_,
        "old": _state(resource),
        "new": None if deleted else _state(resource),
        # Not omitempty in the engine: null when the step has no detailed diff (yet).
        "detailedDiff": ({d: {"diffKind": "update", "inputDiff": True} for d in diffs} if diffs else None),
        "provider": PROVIDER_REF if type_ != "pulumi:pulumi:Stack" else "",
    }
    if diffs:
        metadata["diffs"] = diffs
    return metadata


def _pre(metadata: dict[str, Any]) -> dict[str, Any]:
    return {"resourcePreEvent": {"metadata": metadata, "planning": True}}


def _outputs(metadata: dict[str, Any]) -> dict[str, Any]:
    return {"resOutputsEvent": {"metadata": metadata, "planning": True}}


def _diagnostic(urn: str, message: str) -> dict[str, Any]:
    # Colour directives as the engine sends them with the default --color (raw).
    return {
        "diagnosticEvent": {
            "urn": urn,
            "prefix": "<{%fg 1%}>error: <{%reset%}>",
            "message": f"<{{%reset%}}>{message}<{{%reset%}}>",
            "color": "raw",
            "severity": "error",
        }
    }


def _refresh_events(
    results: dict[str, tuple[str, list[str]]], *, preview: bool
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Each resource's refresh step: pre-event op "refresh", then the result in the outputs event
    (a refresh command), or op "refresh" again (inside `preview --refresh`, where it is not counted)."""
    events: list[dict[str, Any]] = []
    changes: dict[str, int] = {}
    for resource in ALL:
        events.append(_pre(_metadata("refresh", resource)))
        op, diffs = results.get(resource[1], ("same", []))
        if preview:
            events.append(_outputs(_metadata("refresh", resource)))
            continue
        # A refresh diff is the inverted diff of an `up` against the new state: outputs to inputs.
        events.append(_outputs(_metadata(op, resource, diffs, deleted=op == "delete")))
        changes[op] = changes.get(op, 0) + 1
    return events, changes


def _plan(
    steps: dict[str, tuple[str, list[str]]], resources: list[Resource] = ALL
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The preview's planned steps after its refresh: one pre-event and one outputs event each.

    A replacement is three steps: the logical "replace", its "create-replacement" half right after,
    and its "delete-replaced" half at the end, neither half logical (recorded in
    TestAliasURNs/urn-force-new-0-0-preview/eventstream.json; only the logical step is counted).
    """
    events: list[dict[str, Any]] = []
    deletes: list[dict[str, Any]] = []
    changes: dict[str, int] = {}
    for resource in resources:
        op, diffs = steps.get(resource[1], ("same", []))
        metadata = _metadata(op, resource, diffs)
        if op == "create":
            metadata["old"] = None
        # Program steps are logical; a replacement's create/delete halves are not.
        metadata["logical"] = True
        events += [_pre(metadata), _outputs(metadata)]
        if op == "replace":
            metadata["keys"] = diffs
            halves = {
                half: {**metadata, "op": half, "logical": False}
                for half in ("create-replacement", "delete-replaced")
            }
            events += [_pre(halves["create-replacement"]), _outputs(halves["create-replacement"])]
            deletes += [_pre(halves["delete-replaced"]), _outputs(halves["delete-replaced"])]
        changes[op] = changes.get(op, 0) + 1
    return events + deletes, changes


OUT_OF_BAND_REFRESH = {SG_URN: ("update", ["ingress"]), LOG_URN: ("delete", [])}
OUT_OF_BAND_PLAN = {SG_URN: ("update", ["ingress"]), LOG_URN: ("create", [])}
PROGRAM_DRIFT_PLAN = {RDS_URN: ("update", ["backupRetentionPeriod"]), LOG_URN: ("replace", ["name"])}


def _run(command: str, scenario: str) -> tuple[list[dict[str, Any]], dict[str, int], str]:
    """Engine events, resource changes and the summary's result of one operation."""
    if command == "refresh":
        if scenario == "no-credentials":
            events = [_pre(_metadata("refresh", STACK)), _diagnostic(PROVIDER_URN, CREDENTIALS_ERROR)]
            return events, {}, "failed"
        events, changes = _refresh_events(
            OUT_OF_BAND_REFRESH if scenario == "out-of-band" else {}, preview=False
        )
        return events, changes, "succeeded"
    refreshed, _ = _refresh_events({}, preview=True)
    if scenario == "preview-fails":
        # The engine planned the RDS update (its pre-event is out), then the program raised.
        planned, _ = _plan(PROGRAM_DRIFT_PLAN, [STACK, SG, RDS])
        events = [*refreshed, *planned[:-1], _diagnostic(STACK_URN, PROGRAM_ERROR)]
        return events, {"same": 2}, "failed"
    plan = {"out-of-band": OUT_OF_BAND_PLAN, "program-drift": PROGRAM_DRIFT_PLAN}.get(scenario, {})
    planned, changes = _plan(plan)
    return [*refreshed, *planned], changes, "succeeded"


def _stream(address: str, events: list[dict[str, Any]]) -> None:
    """Send the events to the Automation API's event server as the CLI does, with the SDK's stubs."""
    import grpc
    from pulumi.runtime.proto import events_pb2, events_pb2_grpc

    now = int(time.time())
    requests = [
        events_pb2.EventRequest(event=json.dumps({"sequence": n, "timestamp": now, **e}) + "\n")
        for n, e in enumerate(events, start=1)
    ]
    with grpc.insecure_channel(address) as channel:
        events_pb2_grpc.EventsStub(channel).StreamEvents(iter(requests), timeout=30)


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _operation(command: str, argv: list[str], scenario: str) -> int:
    log = _option(argv, "--event-log") or ""
    if not log.startswith("tcp://"):
        # A CLI this new is only ever given the SDK's gRPC server; a file path means the SDK took the old path.
        print(f"fake pulumi: expected --event-log tcp://HOST:PORT, got {log!r}", file=sys.stderr)
        return 2
    events, changes, result = _run(command, scenario)
    summary = {
        "maybeCorrupt": False,
        "durationSeconds": 1,
        "resourceChanges": changes,
        "PolicyPacks": {},
        "isPreview": True,
        "result": result,
    }
    _stream(
        log.removeprefix("tcp://"),
        [
            {"preludeEvent": {"config": {"aws:region": "eu-west-1"}}},
            *events,
            {"summaryEvent": summary},
            {"cancelEvent": {}},
        ],
    )
    if result == "failed":
        print("Diagnostics:")
        for event in events:
            if "diagnosticEvent" in event:
                print("    error: " + event["diagnosticEvent"]["message"].replace("<{%reset%}>", ""))
        return 1
    if command == "preview" and "--expect-no-changes" in argv and set(changes) - {"same"}:
        print("error: no changes were expected for preview but changes were proposed", file=sys.stderr)
        return 7
    return 0


def main(argv: list[str]) -> int:
    scenario = os.environ.get("FAKE_PULUMI_SCENARIO", "no-drift")
    with Path(os.environ["FAKE_PULUMI_LOG"]).open("a", encoding="utf-8") as calls:
        calls.write(json.dumps(argv) + "\n")
    # Global flags such as --non-interactive come before the command.
    argv = [arg for arg in argv if arg != "--non-interactive"]
    command = argv[0] if argv else ""
    if command == "version":
        print("v3.0.0" if scenario == "old-cli" else CLI_VERSION)
        return 0
    if command == "stack" and argv[1:2] == ["select"]:
        if scenario == "no-stack":
            print(f"error: no stack named '{_option(argv, '--stack')}' found", file=sys.stderr)
            return 6
        if scenario == "no-backend":
            print(
                "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions",
                file=sys.stderr,
            )
            return 3
        return 0
    if command in ("refresh", "preview"):
        return _operation(command, argv, scenario)
    print(f"fake pulumi: unexpected call {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
