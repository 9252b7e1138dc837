"""The supply-chain gate: a deploy goes ahead only if the registry's scan of the exact digests it is about
to roll out is finished and shows nothing at or above the stack's severity threshold, except findings a
reviewed allowlist accepts until their expiry date.

ECR answers ``DescribeImageScanFindings`` for one digest with a scan status and the findings: basic
scanning lists them under ``findings`` (``name``, ``severity``), enhanced scanning (Amazon Inspector)
under ``enhancedFindings`` (``packageVulnerabilityDetails.vulnerabilityId``, ``severity``). Both are read.
A scan not started yet (``ScanNotFoundException``) or still running is waited for, up to a deadline; a
scan that failed or cannot run (unsupported image, findings unavailable) blocks: the gate fails closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# ECR's severities, lowest first; UNDEFINED and UNTRIAGED (not rated yet) rank below every threshold.
SEVERITIES = ("UNDEFINED", "UNTRIAGED", "INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
# Production blocks on CRITICAL and HIGH; a stack may only be stricter (see registry.scanBlockSeverity).
DEFAULT_THRESHOLD = "HIGH"
DONE = frozenset({"COMPLETE", "ACTIVE"})  # basic scan finished / enhanced scan continuously active
WAITING = frozenset({"IN_PROGRESS", "PENDING"})
DEFAULT_ALLOWLIST = Path("infra/scan-allowlist.yaml")


class Verdict(StrEnum):
    CLEAN = "clean"
    ALLOWLISTED = "allowlisted"  # findings at or above the threshold, every one accepted until its expiry
    BLOCKED = "blocked"
    NOT_SCANNED = "not scanned in time"


class AllowedFinding(BaseModel):
    """One reviewed exception: a vulnerability accepted in one repository (or all) until a date."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(min_length=3)
    repository: str | None = None  # None: every repository
    expires: date
    reason: str = Field(min_length=10)
    reviewed_by: str = Field(alias="reviewedBy", min_length=2)


class Allowlist(BaseModel):
    model_config = ConfigDict(extra="forbid")

    findings: list[AllowedFinding] = []

    def entry(self, finding_id: str, repository: str) -> AllowedFinding | None:
        for item in self.findings:
            if item.id == finding_id and item.repository in (None, repository):
                return item
        return None


def load_allowlist(path: Path) -> Allowlist:
    """The reviewed allowlist; a missing file is an empty list, a malformed one an error naming the key."""
    if not path.exists():
        return Allowlist()
    try:
        return Allowlist.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{path}: {where}: {first['msg']}") from None


@dataclass(frozen=True)
class ImageRef:
    repository: str
    digest: str  # sha256:<hex>

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        """``<registry>/<repository>@sha256:<hex>``, as the stack's imageRefs / a pushed digest."""
        name, sep, digest = ref.partition("@")
        if not sep or not digest.startswith("sha256:") or len(digest) != len("sha256:") + 64:
            raise ValueError(f"{ref!r} is not pinned by sha256 digest")
        host, slash, repository = name.partition("/")
        return cls(repository if slash and "." in host else name, digest)


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str


@dataclass
class ImageResult:
    image: ImageRef
    verdict: Verdict
    status: str
    blocking: list[Finding] = field(default_factory=list[Finding])
    allowed: list[Finding] = field(default_factory=list[Finding])
    expired: list[tuple[Finding, date]] = field(default_factory=list[tuple[Finding, date]])


def _findings(page: Mapping[str, Any]) -> Iterator[Finding]:
    body = page.get("imageScanFindings", {})
    for item in body.get("findings", []):
        yield Finding(item["name"], item.get("severity", "UNDEFINED"))
    for item in body.get("enhancedFindings", []):
        details = item.get("packageVulnerabilityDetails", {})
        yield Finding(
            details.get("vulnerabilityId") or item.get("title", "?"), item.get("severity", "UNDEFINED")
        )


def at_or_above(severity: str, threshold: str) -> bool:
    rank = {name: n for n, name in enumerate(SEVERITIES)}
    return rank.get(severity.upper(), 0) >= rank[threshold]


@dataclass(frozen=True)
class Gate:
    ecr: Any  # a boto3 ECR client
    threshold: str
    allowlist: Allowlist
    today: date
    timeout_seconds: float
    interval_seconds: float = 15.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def _scan(self, image: ImageRef) -> tuple[str, list[Mapping[str, Any]]]:
        """The scan status and every page of findings; ("NOT_STARTED", []) before a scan exists."""
        pages: list[Mapping[str, Any]] = []
        kwargs: dict[str, Any] = {
            "repositoryName": image.repository,
            "imageId": {"imageDigest": image.digest},
        }
        while True:
            try:
                page = self.ecr.describe_image_scan_findings(**kwargs)
            except self.ecr.exceptions.ScanNotFoundException:
                return "NOT_STARTED", []
            status = page.get("imageScanStatus", {}).get("status", "UNKNOWN")
            pages.append(page)
            if status not in DONE or not page.get("nextToken"):
                return status, pages
            kwargs["nextToken"] = page["nextToken"]

    def check(self, image: ImageRef) -> ImageResult:
        deadline = self.clock() + self.timeout_seconds
        status, pages = self._scan(image)
        while status in WAITING or status == "NOT_STARTED":
            if self.clock() + self.interval_seconds > deadline:
                return ImageResult(image, Verdict.NOT_SCANNED, status)
            self.sleep(self.interval_seconds)
            status, pages = self._scan(image)
        if status not in DONE:
            return ImageResult(image, Verdict.BLOCKED, status)
        return self._judge(image, status, [f for page in pages for f in _findings(page)])

    def _judge(self, image: ImageRef, status: str, findings: Sequence[Finding]) -> ImageResult:
        result = ImageResult(image, Verdict.CLEAN, status)
        for finding in findings:
            if not at_or_above(finding.severity, self.threshold):
                continue
            entry = self.allowlist.entry(finding.id, image.repository)
            if entry is None:
                result.blocking.append(finding)
            elif entry.expires < self.today:
                result.expired.append((finding, entry.expires))
            else:
                result.allowed.append(finding)
        if result.blocking or result.expired:
            result.verdict = Verdict.BLOCKED
        elif result.allowed:
            result.verdict = Verdict.ALLOWLISTED
        return result

    def run(self, images: Sequence[ImageRef]) -> list[ImageResult]:
        return [self.check(image) for image in images]


def passed(results: Sequence[ImageResult]) -> bool:
    return all(r.verdict in {Verdict.CLEAN, Verdict.ALLOWLISTED} for r in results)


def describe(result: ImageResult) -> str:
    """One line per image for the deploy log."""
    head = f"{result.image.repository}@{result.image.digest[:19]}…: {result.verdict} (scan {result.status})"
    parts = [f"{f.id} {f.severity}" for f in result.blocking]
    parts += [f"{f.id} {f.severity} (allowlist entry expired {expires})" for f, expires in result.expired]
    parts += [f"{f.id} {f.severity} (allowlisted)" for f in result.allowed]
    return head + (": " + ", ".join(parts) if parts else "")
