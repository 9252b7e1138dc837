"""The deploy's scan gate against the suite's moto server: each path a deploy can take.

moto serves ECR's DescribeImageScanFindings for pushed images: by default one HIGH finding
(CVE-9999-9999, the basic-scanning shape); other answers (an enhanced-scanning CRITICAL finding, a clean
scan, a scan still IN_PROGRESS) are set per repository and digest through moto's own API
(/moto-api/static/ecr/scan-finding-results), in the shapes ECR documents for DescribeImageScanFindings.
Each test pushes to its own repository, so nothing leaks between tests sharing the server.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from harness.moto_server import CREDENTIALS, REGION, MotoServer
from stacks.cli import app
from stacks.scan_gate import AllowedFinding, Allowlist, Gate, ImageRef, Verdict, load_allowlist, passed

TODAY = date(2026, 12, 2)
MOTO_DEFAULT_FINDING = "CVE-9999-9999"  # moto's default answer: one HIGH finding


class FakeClock:
    """Time that passes only when the gate sleeps: waiting is tested without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _push(moto: MotoServer, *, scanned: bool = True) -> ImageRef:
    ecr = moto.client("ecr")
    repository = f"ai-agents-test-{uuid.uuid4().hex[:8]}/api"
    ecr.create_repository(repositoryName=repository)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": f"sha256:{uuid.uuid4().hex * 2}"},
        }
    )
    pushed = ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag="0.1.0")
    digest = pushed["image"]["imageId"]["imageDigest"]
    if scanned:
        ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
    return ImageRef(repository, digest)


def _answer(moto: MotoServer, image: ImageRef, status: str, **findings: Any) -> None:
    """What ECR will answer for this digest (moto's static scan results)."""
    result = {
        "registryId": "123456789012",
        "repositoryName": image.repository,
        "imageId": {"imageDigest": image.digest},
        "imageScanStatus": {"status": status, "description": status.lower()},
        "imageScanFindings": {"findingSeverityCounts": {}, **findings},
    }
    response = httpx.post(
        f"{moto.url}/moto-api/static/ecr/scan-finding-results",
        json={"results": [result], "region": REGION},
        timeout=10,
    )
    response.raise_for_status()


def _gate(moto: MotoServer, allowlist: Allowlist | None = None, clock: FakeClock | None = None) -> Gate:
    clock = clock or FakeClock()
    return Gate(
        moto.client("ecr"), "HIGH", allowlist or Allowlist(), TODAY, timeout_seconds=60,
        interval_seconds=15, clock=clock, sleep=clock.sleep,
    )  # fmt: skip


def _accepting(image: ImageRef, expires: date) -> Allowlist:
    return Allowlist(
        findings=[
            AllowedFinding(
                id=MOTO_DEFAULT_FINDING,
                repository=image.repository,
                expires=expires,
                reason="not reachable from the service's code paths",
                reviewedBy="security-team",
            )
        ]
    )


def test_clean_scan_passes(moto: MotoServer) -> None:
    image = _push(moto)
    medium = {"name": "CVE-2026-0001", "severity": "MEDIUM", "attributes": []}
    _answer(moto, image, "COMPLETE", findings=[medium])
    (result,) = _gate(moto).run([image])
    assert result.verdict is Verdict.CLEAN and not result.blocking and passed([result])


def test_findings_at_the_threshold_block(moto: MotoServer) -> None:
    image = _push(moto)  # moto's default: HIGH CVE-9999-9999, basic-scanning shape
    (result,) = _gate(moto).run([image])
    assert result.verdict is Verdict.BLOCKED and not passed([result])
    assert [(f.id, f.severity) for f in result.blocking] == [(MOTO_DEFAULT_FINDING, "HIGH")]


def test_an_enhanced_scanning_critical_finding_blocks(moto: MotoServer) -> None:
    image = _push(moto)
    critical = {
        "severity": "CRITICAL",
        "title": "CVE-2026-4242 - openssl",
        "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-4242", "vulnerablePackages": []},
    }
    _answer(moto, image, "ACTIVE", enhancedFindings=[critical])
    (result,) = _gate(moto).run([image])
    assert result.verdict is Verdict.BLOCKED
    assert [(f.id, f.severity) for f in result.blocking] == [("CVE-2026-4242", "CRITICAL")]


def test_an_allowlisted_finding_passes_until_its_expiry(moto: MotoServer) -> None:
    image = _push(moto)
    (result,) = _gate(moto, _accepting(image, TODAY + timedelta(days=30))).run([image])
    assert result.verdict is Verdict.ALLOWLISTED and passed([result])
    assert [f.id for f in result.allowed] == [MOTO_DEFAULT_FINDING]


def test_an_expired_allowlist_entry_blocks_again(moto: MotoServer) -> None:
    image = _push(moto)
    (result,) = _gate(moto, _accepting(image, TODAY - timedelta(days=1))).run([image])
    assert result.verdict is Verdict.BLOCKED and not result.allowed
    assert [(f.id, expires) for f, expires in result.expired] == [
        (MOTO_DEFAULT_FINDING, TODAY - timedelta(days=1))
    ]


@pytest.mark.parametrize("scanned", [True, False], ids=["scan-in-progress", "scan-not-started"])
def test_a_scan_not_finished_in_time_stops_the_deploy(moto: MotoServer, scanned: bool) -> None:
    image = _push(moto, scanned=scanned)
    if scanned:
        _answer(moto, image, "IN_PROGRESS")
    clock = FakeClock()
    (result,) = _gate(moto, clock=clock).run([image])
    assert result.verdict is Verdict.NOT_SCANNED and not passed([result])
    assert clock.slept == [15, 15, 15, 15], "polled until the 60 s deadline, never past it"


def test_a_failed_scan_blocks(moto: MotoServer) -> None:
    image = _push(moto)
    _answer(moto, image, "UNSUPPORTED_IMAGE")
    (result,) = _gate(moto).run([image])
    assert result.verdict is Verdict.BLOCKED and result.status == "UNSUPPORTED_IMAGE"


def test_the_command_reads_the_stack_outputs_and_exits_1_when_blocked(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean, blocked = _push(moto), _push(moto)
    _answer(moto, clean, "COMPLETE", findings=[])
    host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "repositoryUrls": {
                    "api": f"{host}/{clean.repository}",
                    "worker": f"{host}/{blocked.repository}",
                },
                "imageDigests": {"api": clean.digest, "worker": blocked.digest},
            }
        )
    )
    for name, value in {
        **CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_ECR": moto.url,
    }.items():
        monkeypatch.setenv(name, value)
    run = CliRunner().invoke(
        app,
        ["scan-gate", "production", "--outputs", str(outputs), "--allowlist", str(tmp_path / "none.yaml")],
    )
    assert run.exit_code == 1, run.output
    assert f"{clean.repository}@{clean.digest[:19]}…: clean" in run.output
    assert (
        f"{blocked.repository}@{blocked.digest[:19]}…: blocked" in run.output
        and MOTO_DEFAULT_FINDING in run.output
    )


def test_the_repository_allowlist_is_valid_and_every_entry_reviewed() -> None:
    allowlist = load_allowlist(Path(__file__).resolve().parents[2] / "infra" / "scan-allowlist.yaml")
    assert all(entry.reason and entry.reviewed_by for entry in allowlist.findings)


def test_an_allowlist_entry_without_expiry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "allowlist.yaml"
    path.write_text("findings:\n  - id: CVE-2026-1\n    reason: it is fine, trust me\n    reviewedBy: me\n")
    with pytest.raises(ValueError, match=r"allowlist.yaml: findings.0.expires: Field required"):
        load_allowlist(path)
