"""Smoke test of a running instance: `python -m app.smoke --base-url URL [--tenant T --secret S]`.

The checks the old validation reports ran, done right: health JSON, readiness, OpenAPI docs, metrics
(reachable in-cluster, *not* reachable through the public ingress), a 404 that is JSON, security
headers, CORS preflight, a correctly signed webhook accepted (202 + job id) and its job reaching a
terminal status (read with the tenant-signed GET /api/v1/jobs/{id}), a bad and a missing signature
rejected with 401, and a response-time budget.

A PASS/FAIL table on stdout (or, with --json, one JSON document on stdout and nothing else); exit 0
when every check passed (skipped checks need --tenant/--secret), 1 when any failed, 2 on bad usage.

Metrics: production's Ingress does not route /metrics (it is scraped in-cluster), so by default an
https:// base URL expects /metrics to be *not* served (404) and an http:// one (local, in-cluster)
expects it served; --expect-metrics / --no-expect-metrics override that.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.table import Table

from app.signing import job_request_message, sign

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
TERMINAL = ("succeeded", "failed")
SECURITY_HEADERS = {
    "strict-transport-security": None,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": None,
    "content-security-policy": None,
    "cache-control": "no-store",
}
DISALLOWED_ORIGIN = "https://smoke-test.invalid"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    duration_ms: float = 0.0


@dataclass
class Options:
    base_url: str
    tenant: str | None = None
    secret: str | None = None
    expect_metrics: bool | None = None
    cors_origin: str | None = None
    ticket_id: str | None = None
    expect_job_status: str | None = None
    budget_ms: float = 1000.0
    job_timeout: float = 120.0
    request_timeout: float = 10.0
    json: bool = False

    @property
    def metrics_expected(self) -> bool:
        if self.expect_metrics is not None:
            return self.expect_metrics
        return urlsplit(self.base_url).scheme != "https"


class Failed(Exception):
    """A check's assertion failed; the message is the table's detail."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def _json(response: httpx.Response) -> Any:
    _expect(
        response.headers.get("content-type", "").startswith("application/json"),
        f"{response.request.method} {response.request.url.path}: content-type "
        f"{response.headers.get('content-type')!r}, not JSON",
    )
    try:
        return response.json()
    except ValueError:
        raise Failed(f"{response.request.url.path}: body is not valid JSON") from None


@dataclass
class Smoke:
    options: Options
    client: httpx.Client
    checks: list[Check] = field(default_factory=list)
    job_id: str | None = None

    def run(self) -> list[Check]:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("health", self.health),
            ("readiness", self.readiness),
            ("openapi docs", self.openapi),
            ("metrics", self.metrics),
            ("404 is JSON", self.not_found),
            ("security headers", self.security_headers),
            ("CORS preflight", self.cors),
            ("signed webhook accepted", self.webhook_accepted),
            ("job reaches a terminal status", self.job_terminal),
            ("bad signature rejected", self.bad_signature),
            ("missing signature rejected", self.missing_signature),
            ("response time", self.response_time),
        ]
        for name, step in steps:
            started = time.perf_counter()
            try:
                detail = step()
                status = SKIP if detail.startswith("skipped") else PASS
            except Failed as failure:
                status, detail = FAIL, str(failure)
            except httpx.HTTPError as error:
                status, detail = FAIL, f"{type(error).__name__}: {error}"
            elapsed = (time.perf_counter() - started) * 1000
            self.checks.append(Check(name, status, detail, round(elapsed, 1)))
        return self.checks

    # --- checks --------------------------------------------------------------------------------

    def health(self) -> str:
        response = self.client.get("/health")
        _expect(response.status_code == 200, f"/health answered {response.status_code}")
        body = _json(response)
        _expect(body == {"status": "ok"}, f"/health body {body!r}")
        return '200 {"status": "ok"}'

    def readiness(self) -> str:
        response = self.client.get("/api/v1/ready")
        body = _json(response)
        checks = body.get("checks", {}) if isinstance(body, dict) else {}
        summary = ", ".join(f"{k}={v.get('status')}" for k, v in checks.items() if isinstance(v, dict))
        _expect(response.status_code == 200, f"/api/v1/ready answered {response.status_code}: {body}")
        _expect(body.get("status") == "ready", f"status {body.get('status')!r}")
        _expect({"database", "redis"} <= set(checks), f"checks {sorted(checks)}")
        return f"200 ready ({summary})"

    def openapi(self) -> str:
        schema = self.client.get("/openapi.json")
        _expect(schema.status_code == 200, f"/openapi.json answered {schema.status_code}")
        body = _json(schema)
        _expect(str(body.get("openapi", "")).startswith("3."), "no OpenAPI 3 document")
        _expect("/webhook/servicedesk" in body.get("paths", {}), "webhook path missing from the schema")
        docs = self.client.get("/docs")
        _expect(docs.status_code == 200, f"/docs answered {docs.status_code}")
        _expect("text/html" in docs.headers.get("content-type", ""), "/docs is not HTML")
        return f"OpenAPI {body['openapi']}, {len(body.get('paths', {}))} paths, /docs HTML"

    def metrics(self) -> str:
        response = self.client.get("/metrics")
        if self.options.metrics_expected:
            _expect(response.status_code == 200, f"/metrics answered {response.status_code}")
            _expect("ai_agents_http_requests_total" in response.text, "no ai_agents_* series")
            return "200, ai_agents_* series present"
        _expect(
            response.status_code in {403, 404},
            f"/metrics answered {response.status_code} but must not be public (expected 404)",
        )
        return f"{response.status_code}: not exposed publicly (as intended)"

    def not_found(self) -> str:
        response = self.client.get(f"/smoke-test-missing-{uuid.uuid4().hex[:8]}")
        _expect(response.status_code == 404, f"answered {response.status_code}")
        body = _json(response)
        _expect(isinstance(body, dict) and "detail" in body, f"no `detail` in {body!r}")
        return f"404 {json.dumps(body)}"

    def security_headers(self) -> str:
        response = self.client.get("/health")
        missing: list[str] = []
        for header, value in SECURITY_HEADERS.items():
            present = response.headers.get(header)
            if present is None or (value is not None and value.lower() not in present.lower()):
                missing.append(f"{header}{'=' + value if value else ''}")
        _expect(not missing, f"missing or wrong: {', '.join(missing)}")
        return f"{len(SECURITY_HEADERS)} headers present"

    def _preflight(self, origin: str) -> httpx.Response:
        return self.client.options(
            "/webhook/servicedesk",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-servicedesk-signature",
            },
        )

    def cors(self) -> str:
        denied = self._preflight(DISALLOWED_ORIGIN)
        granted = denied.headers.get("access-control-allow-origin")
        _expect(granted not in {"*", DISALLOWED_ORIGIN}, f"an unlisted origin was allowed ({granted!r})")
        if self.options.cors_origin is None:
            return f"unlisted origin refused ({denied.status_code}, no Allow-Origin)"
        allowed = self._preflight(self.options.cors_origin)
        _expect(allowed.status_code in {200, 204}, f"preflight answered {allowed.status_code}")
        _expect(
            allowed.headers.get("access-control-allow-origin") == self.options.cors_origin,
            f"Allow-Origin {allowed.headers.get('access-control-allow-origin')!r}",
        )
        methods = allowed.headers.get("access-control-allow-methods", "")
        _expect("POST" in methods.upper(), f"Allow-Methods {methods!r}")
        return f"{self.options.cors_origin} allowed, unlisted origin refused"

    def _payload(self) -> bytes:
        ticket = self.options.ticket_id or f"smoke-{uuid.uuid4().hex[:12]}"
        return json.dumps(
            {"ticket_id": ticket, "subject": "Smoke test", "description": "Deployment smoke test."}
        ).encode()

    def _post(self, body: bytes, signature: str | None) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "X-Tenant-ID": self.options.tenant or "smoke-test",
            "X-Delivery-ID": f"smoke-{uuid.uuid4()}",
        }
        if signature is not None:
            headers["X-ServiceDesk-Signature"] = signature
        return self.client.post("/webhook/servicedesk", content=body, headers=headers)

    def _credentials(self) -> tuple[str, str] | None:
        if self.options.tenant and self.options.secret:
            return self.options.tenant, self.options.secret
        return None

    def webhook_accepted(self) -> str:
        credentials = self._credentials()
        if credentials is None:
            return "skipped: needs --tenant and --secret"
        body = self._payload()
        response = self._post(body, sign(credentials[1], body))
        _expect(response.status_code == 202, f"answered {response.status_code}: {response.text[:200]}")
        data = _json(response)
        job_id = data.get("job_id")
        try:
            uuid.UUID(str(job_id))
        except ValueError:
            raise Failed(f"no job id in {data!r}") from None
        self.job_id = str(job_id)
        return f"202, job {job_id}"

    def job_terminal(self) -> str:
        credentials = self._credentials()
        if credentials is None:
            return "skipped: needs --tenant and --secret"
        _expect(self.job_id is not None, "no job was created")
        path = f"/api/v1/jobs/{self.job_id}"
        deadline = time.monotonic() + self.options.job_timeout
        status = "unknown"
        while True:
            timestamp = str(int(time.time()))
            headers = {
                "X-Tenant-ID": credentials[0],
                "X-Signature-Timestamp": timestamp,
                "X-ServiceDesk-Signature": sign(credentials[1], job_request_message(timestamp, "GET", path)),
            }
            response = self.client.get(path, headers=headers)
            _expect(response.status_code == 200, f"GET {path} answered {response.status_code}")
            job = _json(response)
            status = str(job.get("status"))
            if status in TERMINAL:
                break
            if time.monotonic() >= deadline:
                raise Failed(f"still {status} after {self.options.job_timeout:.0f}s")
            time.sleep(0.5)
        expected = self.options.expect_job_status
        error = f" ({job.get('error')})" if job.get("error") else ""
        _expect(expected is None or status == expected, f"{status}{error}, expected {expected}")
        return f"{status}{error} after {job.get('attempts')} attempt(s)"

    def bad_signature(self) -> str:
        body = self._payload()
        response = self._post(body, sign(f"wrong-{uuid.uuid4().hex}", body))
        _expect(response.status_code == 401, f"answered {response.status_code}, expected 401")
        _expect("detail" in _json(response), "no JSON detail")
        return "401 with JSON detail"

    def missing_signature(self) -> str:
        response = self._post(self._payload(), None)
        _expect(response.status_code == 401, f"answered {response.status_code}, expected 401")
        _expect("detail" in _json(response), "no JSON detail")
        return "401 with JSON detail"

    def response_time(self) -> str:
        samples: list[float] = []
        for _ in range(5):
            started = time.perf_counter()
            self.client.get("/health")
            samples.append((time.perf_counter() - started) * 1000)
        median, worst = statistics.median(samples), max(samples)
        budget = self.options.budget_ms
        _expect(worst <= budget, f"/health max {worst:.0f} ms > budget {budget:.0f} ms")
        return f"/health median {median:.0f} ms, max {worst:.0f} ms (budget {budget:.0f} ms)"


def run_smoke(options: Options, transport: httpx.BaseTransport | None = None) -> list[Check]:
    with httpx.Client(
        base_url=options.base_url.rstrip("/"),
        timeout=options.request_timeout,
        follow_redirects=False,
        transport=transport,
        headers={"User-Agent": "ai-agents-smoke/1"},
    ) as client:
        return Smoke(options, client).run()


def report(options: Options, checks: Sequence[Check]) -> dict[str, Any]:
    counts = {s.lower(): sum(1 for c in checks if c.status == s) for s in (PASS, FAIL, SKIP)}
    return {
        "base_url": options.base_url,
        "passed": counts["fail"] == 0,
        "summary": counts,
        "checks": [asdict(check) for check in checks],
    }


def _table(options: Options, checks: Sequence[Check]) -> Table:
    table = Table(title=f"Smoke test of {options.base_url}", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("ms", justify="right")
    table.add_column("detail", overflow="fold")
    style = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}
    for check in checks:
        table.add_row(
            check.name, f"[{style[check.status]}]{check.status}[/]", f"{check.duration_ms:.0f}", check.detail
        )
    return table


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m app.smoke", description="Smoke-test a running ticket-enhancement service."
    )
    parser.add_argument(
        "--base-url", required=True, help="e.g. https://api.example.com or http://127.0.0.1:8000"
    )
    parser.add_argument("--tenant", help="tenant id for the signed webhook and job checks")
    parser.add_argument(
        "--secret",
        default=os.environ.get("SMOKE_WEBHOOK_SECRET") or None,
        help="that tenant's webhook secret (default: env SMOKE_WEBHOOK_SECRET, which keeps it out of ps)",
    )
    parser.add_argument(
        "--expect-metrics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="/metrics must be served (default: yes for http://, no — must be 404 — for https://)",
    )
    parser.add_argument("--cors-origin", help="an origin CORS_ORIGINS allows: its preflight must succeed")
    parser.add_argument("--ticket-id", help="ticket id to post (default: a new smoke-… id)")
    parser.add_argument("--expect-job-status", choices=TERMINAL, help="require this terminal job status")
    parser.add_argument("--budget-ms", type=float, default=1000.0, help="max /health response time")
    parser.add_argument("--job-timeout", type=float, default=120.0, help="seconds to wait for the job")
    parser.add_argument("--json", action="store_true", help="print one JSON report on stdout only")
    args = parser.parse_args(argv)
    scheme = urlsplit(args.base_url).scheme
    if scheme not in {"http", "https"} or not urlsplit(args.base_url).netloc:
        parser.error("--base-url must be an http(s) URL")
    if bool(args.tenant) != bool(args.secret):
        parser.error("--tenant and --secret go together")
    return Options(
        base_url=args.base_url,
        tenant=args.tenant,
        secret=args.secret,
        expect_metrics=args.expect_metrics,
        cors_origin=args.cors_origin,
        ticket_id=args.ticket_id,
        expect_job_status=args.expect_job_status,
        budget_ms=args.budget_ms,
        job_timeout=args.job_timeout,
        json=args.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    checks = run_smoke(options)
    result = report(options, checks)
    if options.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        console = Console()
        console.print(_table(options, checks))
        summary = result["summary"]
        verdict = "[green]PASSED[/]" if result["passed"] else "[bold red]FAILED[/]"
        console.print(
            f"{verdict}: {summary['pass']} passed, {summary['fail']} failed, {summary['skip']} skipped"
        )
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
