"""Smoke test of a running instance: `python -m app.smoke --base-url URL --tenant T --secret S`.

The checks the old validation reports ran, done right: health JSON, readiness, OpenAPI docs, metrics
(reachable in-cluster, *not* reachable through the public ingress), a 404 that is JSON, security
headers, CORS preflight, a correctly signed webhook accepted (202 + job id) and its job reaching
`succeeded` (read with the tenant-signed GET /api/v1/jobs/{id}; `--expect-job-status failed` is for
tests only), a bad signature *for that real tenant* and a missing one rejected with 401, and a
response-time budget. Against an https:// URL also: the certificate (chain valid, issuer, days to
expiry), TLS 1.0/1.1 refused, and plain HTTP redirected to HTTPS.

A check that cannot run (no tenant, an http:// URL for the TLS checks) is SKIP, and a skip fails the
run unless it is allowed by id (`--allow-skip tls`): a smoke test that quietly checks less must not
pass. A PASS/FAIL table on stdout (or, with --json, one JSON document on stdout and nothing else);
exit 0 when every check passed or was an allowed skip, 1 otherwise, 2 on bad usage.

Metrics: the public edge does not route /metrics (it is scraped in-cluster), so by default an
https:// base URL expects /metrics to be *not* served (404) and an http:// one (local, in-cluster)
expects it served; --expect-metrics / --no-expect-metrics override that.

Docs: /docs and /openapi.json are expected served unless --no-expect-docs says the stack does not
publish them (production: `edge.publishDocs: false`); then both must answer 404, so the check still
runs and catches a schema published by mistake.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import sys
import time
import uuid
import warnings
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
REDIRECT_CODES = {301, 302, 307, 308}
# Check id (for --allow-skip and the JSON report) -> the table's name.
CHECKS = {
    "health": "health",
    "readiness": "readiness",
    "openapi": "openapi docs",
    "metrics": "metrics",
    "not-found": "404 is JSON",
    "security-headers": "security headers",
    "cors": "CORS preflight",
    "tls-certificate": "TLS certificate",
    "legacy-tls": "TLS 1.0/1.1 refused",
    "https-redirect": "HTTP redirects to HTTPS",
    "webhook": "signed webhook accepted",
    "job": "job reaches the expected status",
    "bad-signature": "bad signature rejected",
    "missing-signature": "missing signature rejected",
    "response-time": "response time",
}


@dataclass
class Check:
    name: str
    status: str
    detail: str
    duration_ms: float = 0.0
    id: str = ""


@dataclass
class Options:
    base_url: str
    tenant: str | None = None
    secret: str | None = None
    expect_metrics: bool | None = None
    expect_docs: bool = True  # False: the edge must not serve /docs and /openapi.json
    cors_origin: str | None = None
    ticket_id: str | None = None
    expect_job_status: str = "succeeded"
    budget_ms: float = 1000.0
    job_timeout: float = 120.0
    request_timeout: float = 10.0
    json: bool = False
    allow_skip: frozenset[str] = frozenset()
    ca_bundle: str | None = None  # trust these CAs instead of the system's (a test CA)
    expect_issuer: str | None = None  # a substring of the certificate issuer's name
    min_cert_days: int = 14
    http_url: str | None = None  # where plain HTTP is served (default: http://<host>)

    @property
    def metrics_expected(self) -> bool:
        if self.expect_metrics is not None:
            return self.expect_metrics
        return urlsplit(self.base_url).scheme != "https"

    @property
    def https(self) -> bool:
        return urlsplit(self.base_url).scheme == "https"

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle)


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
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def steps(self) -> dict[str, Callable[[], str]]:
        return {
            "health": self.health,
            "readiness": self.readiness,
            "openapi": self.openapi,
            "metrics": self.metrics,
            "not-found": self.not_found,
            "security-headers": self.security_headers,
            "cors": self.cors,
            "tls-certificate": self.tls_certificate,
            "legacy-tls": self.legacy_tls,
            "https-redirect": self.https_redirect,
            "webhook": self.webhook_accepted,
            "job": self.job_status,
            "bad-signature": self.bad_signature,
            "missing-signature": self.missing_signature,
            "response-time": self.response_time,
        }

    def run(self, only: Sequence[str] | None = None) -> list[Check]:
        for check_id, step in self.steps().items():
            if only is None or check_id in only:
                self.checks.append(self.run_one(check_id, step))
        return self.checks

    def run_one(self, check_id: str, step: Callable[[], str]) -> Check:
        started = time.perf_counter()
        try:
            detail = step()
            status = SKIP if detail.startswith("skipped") else PASS
        except Failed as failure:
            status, detail = FAIL, str(failure)
        except (httpx.HTTPError, OSError) as error:
            status, detail = FAIL, f"{type(error).__name__}: {error}"
        if status == SKIP and check_id not in self.options.allow_skip:
            status, detail = FAIL, f"{detail}; a skipped check fails unless --allow-skip {check_id}"
        elapsed = (time.perf_counter() - started) * 1000
        return Check(CHECKS[check_id], status, detail, round(elapsed, 1), check_id)

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
        if not self.options.expect_docs:
            return self.docs_unpublished()
        schema = self.client.get("/openapi.json")
        _expect(schema.status_code == 200, f"/openapi.json answered {schema.status_code}")
        body = _json(schema)
        _expect(str(body.get("openapi", "")).startswith("3."), "no OpenAPI 3 document")
        _expect("/webhook/servicedesk" in body.get("paths", {}), "webhook path missing from the schema")
        docs = self.client.get("/docs")
        _expect(docs.status_code == 200, f"/docs answered {docs.status_code}")
        _expect("text/html" in docs.headers.get("content-type", ""), "/docs is not HTML")
        return f"OpenAPI {body['openapi']}, {len(body.get('paths', {}))} paths, /docs HTML"

    def docs_unpublished(self) -> str:
        for path in ("/openapi.json", "/docs"):
            status = self.client.get(path).status_code
            _expect(
                status == 404, f"{path} answered {status} but this stack does not publish it (expected 404)"
            )
        return "404: /openapi.json and /docs not published (as the stack says)"

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
        # Under a prefix the edge routes to the API: a path no route matches gets the gateway's own
        # bare 404, which says nothing about the API's error format.
        response = self.client.get(f"/api/smoke-test-missing-{uuid.uuid4().hex[:8]}")
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
        # A run id in the body: a re-run against the same ticket is a new delivery, not a replay.
        description = f"Deployment smoke test {self.run_id}."
        return json.dumps({"ticket_id": ticket, "subject": "Smoke test", "description": description}).encode()

    def _post(self, body: bytes, signature: str | None) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            # Without a tenant only the missing-signature check runs, and any tenant id answers 401.
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

    def job_status(self) -> str:
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
        _expect(status == expected, f"{status}{error}, expected {expected}")
        return f"{status}{error} after {job.get('attempts')} attempt(s)"

    def bad_signature(self) -> str:
        """The real tenant with a wrong secret: an unknown tenant is refused whatever the signature,
        so only a known one proves the signature is checked."""
        if self._credentials() is None:
            return "skipped: needs --tenant and --secret (an unknown tenant proves nothing)"
        body = self._payload()
        response = self._post(body, sign(f"wrong-{uuid.uuid4().hex}", body))
        _expect(response.status_code == 401, f"answered {response.status_code}, expected 401")
        _expect("detail" in _json(response), "no JSON detail")
        return f"401 with JSON detail for tenant {self.options.tenant}"

    # --- TLS (https:// base URLs) ------------------------------------------------------------

    def _host_port(self) -> tuple[str, int]:
        url = urlsplit(self.options.base_url)
        return url.hostname or "", url.port or 443

    def tls_certificate(self) -> str:
        if not self.options.https:
            return "skipped: needs an https:// base URL"
        host, port = self._host_port()
        try:
            with (
                socket.create_connection((host, port), timeout=self.options.request_timeout) as raw,
                self.options.tls_context().wrap_socket(raw, server_hostname=host) as tls,
            ):
                cert, version = tls.getpeercert() or {}, tls.version()
        except ssl.SSLCertVerificationError as error:
            raise Failed(f"certificate chain not valid for {host}: {error.verify_message}") from None
        except (ssl.SSLError, OSError) as error:
            raise Failed(f"TLS handshake with {host}:{port} failed: {error}") from None
        _expect("notAfter" in cert, f"{host} presented no certificate")
        issuer = ", ".join(f"{k}={v}" for rdn in cert.get("issuer", ()) for k, v in rdn)
        expected = self.options.expect_issuer
        _expect(
            expected is None or expected.lower() in issuer.lower(),
            f"issuer {issuer!r}, expected {expected!r}",
        )
        days = int((ssl.cert_time_to_seconds(str(cert["notAfter"])) - time.time()) // 86400)
        minimum = self.options.min_cert_days
        _expect(days >= minimum, f"certificate expires in {days} days (< {minimum}); issuer {issuer}")
        return f"{version}, chain valid, issuer {issuer}, expires in {days} days"

    def legacy_tls(self) -> str:
        if not self.options.https:
            return "skipped: needs an https:// base URL"
        host, port = self._host_port()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only the protocol version is in question here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # offering them is the point
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        try:
            with (
                socket.create_connection((host, port), timeout=self.options.request_timeout) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                accepted = tls.version()
        except ssl.SSLError as error:
            if "NO_PROTOCOLS_AVAILABLE" in str(error).upper():
                return "skipped: this machine's OpenSSL cannot offer TLS 1.0/1.1"
            return f"refused ({error.reason or error})"
        except (ConnectionResetError, ConnectionAbortedError) as error:
            return f"refused (connection closed: {type(error).__name__})"
        except OSError as error:
            raise Failed(f"could not reach {host}:{port}: {error}") from None
        raise Failed(f"{host}:{port} accepted {accepted}")

    def https_redirect(self) -> str:
        if not self.options.https:
            return "skipped: needs an https:// base URL"
        host, _ = self._host_port()
        plain = (self.options.http_url or f"http://{host}").rstrip("/")
        response = self.client.get(f"{plain}/health")
        location = response.headers.get("location", "")
        _expect(
            response.status_code in REDIRECT_CODES,
            f"{plain}/health answered {response.status_code}, expected a redirect to https",
        )
        target = urlsplit(location)
        _expect(
            target.scheme == "https" and target.hostname == host,
            f"redirects to {location!r}, not to https://{host}",
        )
        return f"{response.status_code} to {location}"

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


def run_smoke(
    options: Options, transport: httpx.BaseTransport | None = None, only: Sequence[str] | None = None
) -> list[Check]:
    """Every check (or the ids in `only`), in order."""
    with httpx.Client(
        base_url=options.base_url.rstrip("/"),
        timeout=options.request_timeout,
        follow_redirects=False,
        transport=transport,
        verify=options.tls_context(),
        headers={"User-Agent": "ai-agents-smoke/1"},
    ) as client:
        return Smoke(options, client).run(only)


def report(options: Options, checks: Sequence[Check]) -> dict[str, Any]:
    counts = {s.lower(): sum(1 for c in checks if c.status == s) for s in (PASS, FAIL, SKIP)}
    return {
        "base_url": options.base_url,
        "passed": counts["fail"] == 0,
        "allowed_skips": sorted(options.allow_skip),
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
    parser.add_argument(
        "--expect-docs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="/docs and /openapi.json must be served (default); --no-expect-docs: both must be 404",
    )
    parser.add_argument("--cors-origin", help="an origin CORS_ORIGINS allows: its preflight must succeed")
    parser.add_argument("--ticket-id", help="ticket id to post (default: a new smoke-… id)")
    parser.add_argument(
        "--expect-job-status",
        choices=TERMINAL,
        default="succeeded",
        help="the status the smoke job must reach (default: succeeded; `failed` is for tests)",
    )
    parser.add_argument(
        "--allow-skip",
        action="append",
        default=[],
        choices=sorted(CHECKS),
        metavar="ID",
        help=f"let this check be skipped (repeatable; ids: {', '.join(CHECKS)})",
    )
    parser.add_argument("--ca-bundle", help="PEM file of the CAs to trust (default: the system's)")
    parser.add_argument("--expect-issuer", help="the certificate issuer must contain this text")
    parser.add_argument(
        "--min-cert-days", type=int, default=14, help="the certificate must be valid this many more days"
    )
    parser.add_argument("--http-url", help="plain-HTTP URL of the same host (default: http://<host>)")
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
        expect_docs=args.expect_docs,
        cors_origin=args.cors_origin,
        ticket_id=args.ticket_id,
        expect_job_status=args.expect_job_status,
        budget_ms=args.budget_ms,
        job_timeout=args.job_timeout,
        json=args.json,
        allow_skip=frozenset(args.allow_skip),
        ca_bundle=args.ca_bundle,
        expect_issuer=args.expect_issuer,
        min_cert_days=args.min_cert_days,
        http_url=args.http_url,
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
