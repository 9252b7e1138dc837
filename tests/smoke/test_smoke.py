"""`make run` + `python -m app.smoke`: the local instance a person starts passes every smoke check, the
printed curl works as pasted, and the smoke test fails when the service is wrong."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml

from app.signing import sign
from app.smoke import CHECKS, FAIL, PASS, SECURITY_HEADERS, SKIP, Options, main, parse_args, report, run_smoke
from harness.net import free_port, wait_until
from infra.config import load_stack_file

REPO = Path(__file__).resolve().parents[2]
TLS_CHECKS = ("tls-certificate", "legacy-tls", "https-redirect")
# A local http:// instance has no TLS to check: the run says so explicitly.
HTTP_ONLY = [arg for check in TLS_CHECKS for arg in ("--allow-skip", check)]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`python -m harness.localrun` as `make run` starts it (a free port instead of 8000). Its output
    stays under pytest's temporary directory, which pytest prunes (not in /tmp for good)."""
    directory = tmp_path_factory.mktemp("localrun")
    ready_file = directory / "ready.json"
    out = (directory / "stdout").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.localrun", "--port", "0", "--ready-file", str(ready_file)],
        cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: ready_file.exists() or process.poll() is not None, 120, interval=0.2, what="make run"
        )
        assert ready_file.exists(), (directory / "stdout").read_text()
        info: dict[str, Any] = json.loads(ready_file.read_text())
        info["stdout"] = directory / "stdout"
        yield info
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = None
        out.close()
    assert code == 0, f"make run did not stop cleanly on SIGTERM ({code})"


def _smoke_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.smoke", *args],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_every_check_passes_against_make_run(local_run: dict[str, Any]) -> None:
    result = _smoke_cli(
        "--base-url", local_run["url"], "--tenant", local_run["tenant"], "--secret", local_run["secret"],
        "--cors-origin", local_run["cors_origin"], "--ticket-id", local_run["ticket_id"], "--json",
        *HTTP_ONLY,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    statuses = {check["id"]: check["status"] for check in document["checks"]}
    assert statuses == {**dict.fromkeys(CHECKS, PASS), **dict.fromkeys(TLS_CHECKS, SKIP)}, document
    assert document["passed"] is True and document["summary"] == {"pass": 12, "fail": 0, "skip": 3}
    assert document["allowed_skips"] == sorted(TLS_CHECKS)


def test_without_allowing_them_the_skipped_tls_checks_fail_the_run(local_run: dict[str, Any]) -> None:
    """http:// cannot prove anything about TLS: a run that does not say so out loud fails."""
    result = _smoke_cli(
        "--base-url", local_run["url"], "--tenant", local_run["tenant"], "--secret", local_run["secret"],
        "--ticket-id", local_run["ticket_id"], "--json", "--allow-skip", "tls-certificate",
    )  # fmt: skip
    assert result.returncode == 1
    document = json.loads(result.stdout)
    failed = {c["id"]: c["detail"] for c in document["checks"] if c["status"] == FAIL}
    assert set(failed) == {"legacy-tls", "https-redirect"}
    assert "--allow-skip legacy-tls" in failed["legacy-tls"]


def test_the_deploy_workflows_invocation_and_the_table(local_run: dict[str, Any]) -> None:
    """What .github/workflows/deploy-stack.yml runs (secret from the environment), then the table."""
    env = {**os.environ, "SMOKE_WEBHOOK_SECRET": local_run["secret"]}
    result = subprocess.run(
        [sys.executable, "-m", "app.smoke", "--base-url", local_run["url"], "--tenant", local_run["tenant"],
         "--ticket-id", local_run["ticket_id"], *HTTP_ONLY],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED: 12 passed, 0 failed, 3 skipped" in result.stdout
    for name in ("health", "readiness", "CORS preflight", "bad signature rejected", "response time"):
        assert name in result.stdout


def test_the_printed_curl_is_ready_to_paste(local_run: dict[str, Any]) -> None:
    printed = Path(local_run["stdout"]).read_text()
    match = re.search(r"^body=.*?-d \"\$body\"$", printed, re.MULTILINE | re.DOTALL)
    assert match, printed
    assert local_run["url"] in printed
    result = subprocess.run(
        ["bash", "-c", match.group(0) + " -sS -o /dev/null -w '%{http_code}'"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.stdout.strip() in {"202", "200"}, result.stdout + result.stderr


# --- the smoke test must be able to fail --------------------------------------------------------


def _transport(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def test_a_service_with_the_old_bugs_fails() -> None:
    """The previous deployment: no security headers, 500 on a missing signature, HTML 404, public metrics."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "OPTIONS":
            return httpx.Response(200, headers={"access-control-allow-origin": "*"})
        if path == "/health":
            return httpx.Response(200, json={"status": "healthy"})
        if path == "/metrics":
            return httpx.Response(200, text="ai_agents_http_requests_total 1\n")
        if path == "/webhook/servicedesk":
            if "x-servicedesk-signature" not in request.headers:
                return httpx.Response(500, text="Internal Server Error")
            return httpx.Response(401, json={"detail": "invalid tenant or signature"})
        return httpx.Response(404, text="<html>Not Found</html>", headers={"content-type": "text/html"})

    # Everything but the TLS checks, which open their own connections (tested below, locally).
    not_tls = [check for check in CHECKS if check not in TLS_CHECKS]
    checks = {
        c.name: c for c in run_smoke(Options("https://api.example.com"), _transport(handler), only=not_tls)
    }
    assert checks["health"].status == FAIL  # {"status": "healthy"} is not the contract
    assert checks["readiness"].status == FAIL
    assert checks["openapi docs"].status == FAIL
    assert checks["metrics"].status == FAIL  # https: must not be public
    assert checks["404 is JSON"].status == FAIL
    assert checks["security headers"].status == FAIL
    assert "x-frame-options" in checks["security headers"].detail
    assert checks["CORS preflight"].status == FAIL
    assert checks["missing signature rejected"].status == FAIL
    # No credentials: the checks that need them cannot run, and an unallowed skip is a failure.
    for check in ("signed webhook accepted", "bad signature rejected"):
        assert checks[check].status == FAIL
        assert "skipped" in checks[check].detail and "--allow-skip" in checks[check].detail
    assert report(Options("https://api.example.com"), list(checks.values()))["passed"] is False


def test_slow_responses_break_the_budget() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "ok"}, headers=dict.fromkeys(SECURITY_HEADERS, "x"))

    options = Options("http://127.0.0.1:1", budget_ms=0.0)
    checks = {c.name: c for c in run_smoke(options, _transport(handler))}
    assert checks["response time"].status == FAIL
    assert "budget 0 ms" in checks["response time"].detail


def test_metrics_expectation_defaults_to_the_scheme() -> None:
    assert Options("http://127.0.0.1:8000").metrics_expected is True
    assert Options("https://api.example.com").metrics_expected is False
    assert Options("https://api.example.com", expect_metrics=True).metrics_expected is True
    assert Options("http://api.internal", expect_metrics=False).metrics_expected is False


def test_unreachable_service_exits_1_with_a_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--base-url", f"http://127.0.0.1:{free_port()}", "--json", "--budget-ms", "1000"])
    assert code == 1
    document = json.loads(capsys.readouterr().out)
    assert document["passed"] is False
    assert {c["status"] for c in document["checks"]} == {FAIL}


@pytest.mark.parametrize(
    "argv",
    [
        ["--base-url", "ftp://x"],
        ["--base-url", "http://x", "--tenant", "t"],
        [],
        ["--base-url", "http://x", "--allow-skip", "no-such-check"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOKE_WEBHOOK_SECRET", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


# --- each check's passing and failing case --------------------------------------------------------

TENANT, SECRET = "smoke-tenant", "whsec-smoke-0123456789"


def _signed_service(*, checks_signature: bool, job_status: str = "succeeded") -> httpx.MockTransport:
    """The webhook and job endpoints of a service that knows TENANT; `checks_signature=False` is
    the bug the bad-signature check exists for (a known tenant's request accepted unsigned-for)."""
    job_id = str(uuid.uuid4())

    def handler(request: httpx.Request) -> httpx.Response:
        tenant = request.headers.get("x-tenant-id")
        signature = request.headers.get("x-servicedesk-signature")
        if tenant != TENANT or signature is None:
            return httpx.Response(401, json={"detail": "invalid tenant or signature"})
        if request.url.path == "/webhook/servicedesk":
            if checks_signature and signature != sign(SECRET, request.content):
                return httpx.Response(401, json={"detail": "invalid tenant or signature"})
            return httpx.Response(202, json={"job_id": job_id})
        return httpx.Response(200, json={"status": job_status, "attempts": 1, "error": None})

    return httpx.MockTransport(handler)


def _one(options: Options, transport: httpx.BaseTransport | None, check: str) -> tuple[str, str]:
    (result,) = run_smoke(options, transport, only=[check])
    return result.status, result.detail


def _edge(*, docs_routed: bool) -> httpx.MockTransport:
    """An edge in front of the API: /openapi.json and /docs routed to it or not (Envoy's bare 404)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if not docs_routed:
            return httpx.Response(404)
        if request.url.path == "/openapi.json":
            return httpx.Response(200, json={"openapi": "3.1.0", "paths": {"/webhook/servicedesk": {}}})
        return httpx.Response(200, text="<html>Swagger UI</html>", headers={"content-type": "text/html"})

    return httpx.MockTransport(handler)


def test_docs_are_expected_served_unless_the_stack_does_not_publish_them() -> None:
    published, unpublished = (
        Options("https://api.example.com"),
        Options("https://api.example.com", expect_docs=False),
    )
    assert _one(published, _edge(docs_routed=True), "openapi")[0] == PASS
    assert _one(published, _edge(docs_routed=False), "openapi") == (FAIL, "/openapi.json answered 404")
    status, detail = _one(unpublished, _edge(docs_routed=False), "openapi")
    assert status == PASS and "not published" in detail
    # Served where the stack says it is not: the check fails, it does not merely skip.
    status, detail = _one(unpublished, _edge(docs_routed=True), "openapi")
    assert status == FAIL and "does not publish" in detail


def test_the_json_404_is_probed_where_the_edge_routes_to_the_api() -> None:
    """Only /api, /health and /webhook reach the API through the edge; elsewhere Envoy answers a bare
    404 itself. The probe must land on the API to say anything about its error format."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(("/api/", "/health", "/webhook")):
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(404)

    assert _one(Options("https://api.example.com"), httpx.MockTransport(handler), "not-found")[0] == PASS


def test_no_expect_docs_on_the_command_line() -> None:
    assert parse_args(["--base-url", "https://x.example", "--no-expect-docs"]).expect_docs is False
    assert parse_args(["--base-url", "https://x.example"]).expect_docs is True


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_the_deploy_expects_docs_exactly_where_the_stack_file_publishes_them(stack: str) -> None:
    """The smoke step's own shell, up to the smoke command, run for each stack: --no-expect-docs comes
    from the stack file's edge.publishDocs (production keeps the schema off the internet)."""
    steps = yaml.safe_load((REPO / ".github" / "workflows" / "deploy-stack.yml").read_text())["jobs"]["up"][
        "steps"
    ]
    smoke = next(step for step in steps if step.get("name") == "Smoke test")
    assert smoke["env"]["STACK"] == "${{ inputs.stack }}"
    prelude, command = smoke["run"].split(".venv/bin/python -m app.smoke", 1)
    assert '"${docs[@]}"' in command
    shown = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", prelude + 'printf "%s\\n" "${docs[@]}"'],
        cwd=REPO, env={**os.environ, "STACK": stack, "TLS_CA_BUNDLE_URL": ""},
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    publishes = load_stack_file(stack).edge.publish_docs
    assert shown == ([] if publishes else ["--no-expect-docs"])
    assert publishes is (stack != "production")


def test_bad_signature_is_checked_with_the_real_tenant() -> None:
    options = Options("http://svc", tenant=TENANT, secret=SECRET)
    assert _one(options, _signed_service(checks_signature=True), "bad-signature")[0] == PASS
    status, detail = _one(options, _signed_service(checks_signature=False), "bad-signature")
    assert (status, detail) == (FAIL, "answered 202, expected 401")


def test_the_job_must_succeed_by_default() -> None:
    options = Options("http://svc", tenant=TENANT, secret=SECRET)
    good = run_smoke(options, _signed_service(checks_signature=True), only=["webhook", "job"])
    assert [c.status for c in good] == [PASS, PASS]
    bad = run_smoke(
        options, _signed_service(checks_signature=True, job_status="failed"), only=["webhook", "job"]
    )
    assert bad[1].status == FAIL and bad[1].detail == "failed, expected succeeded"


def test_a_skip_fails_unless_allowed_by_id() -> None:
    unsigned = Options("http://svc")
    assert _one(unsigned, _signed_service(checks_signature=True), "webhook")[0] == FAIL
    allowed = Options("http://svc", allow_skip=frozenset({"webhook"}))
    status, detail = _one(allowed, _signed_service(checks_signature=True), "webhook")
    assert (status, detail) == (SKIP, "skipped: needs --tenant and --secret")
    assert report(allowed, run_smoke(allowed, None, only=[]))["passed"] is True


# --- TLS, against a local endpoint with a certificate from a test CA -----------------------------


@dataclass
class TlsSite:
    ca_bundle: Path
    issuer: str
    url: str  # https://127.0.0.1:<port> with a modern TLS configuration
    legacy_url: str  # the same certificate, TLS 1.0 still accepted
    http_url: str  # plain HTTP: /redirect/... to url, /elsewhere/... to http, anything else 200


class _PlainHttp(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(308)
            self.send_header("Location", f"{self.target}/health")
        elif self.path.startswith("/elsewhere"):
            self.send_response(301)
            self.send_header("Location", "http://127.0.0.1/health")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def _tls_server(context: ssl.SSLContext) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PlainHttp)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # refused handshakes
    return server


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSite]:
    ca = trustme.CA(organization_name="Smoke Test CA")
    cert = ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=90))
    bundle = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    modern = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    modern.minimum_version = ssl.TLSVersion.TLSv1_2
    legacy = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy.minimum_version = ssl.TLSVersion.TLSv1
    legacy.set_ciphers("DEFAULT:@SECLEVEL=0")
    for context in (modern, legacy):
        cert.configure_cert(context)
    servers = [_tls_server(modern), _tls_server(legacy), ThreadingHTTPServer(("127.0.0.1", 0), _PlainHttp)]
    urls = [f"{scheme}://127.0.0.1:{server.server_address[1]}" for scheme, server in
            zip(("https", "https", "http"), servers, strict=True)]  # fmt: skip
    _PlainHttp.target = urls[0]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield TlsSite(bundle, "Smoke Test CA", *urls)
    for server in servers:
        server.shutdown()
        server.server_close()


def test_tls_certificate_passes_with_a_valid_chain_issuer_and_expiry(tls_site: TlsSite) -> None:
    options = Options(tls_site.url, ca_bundle=str(tls_site.ca_bundle), expect_issuer=tls_site.issuer)
    status, detail = _one(options, None, "tls-certificate")
    assert status == PASS, detail
    assert "Smoke Test CA" in detail and "expires in 89 days" in detail


@pytest.mark.parametrize(
    ("overrides", "failure"),
    [
        ({"ca_bundle": None}, "certificate chain not valid"),  # the test CA is not trusted
        ({"expect_issuer": "Let's Encrypt"}, 'expected "Let\'s Encrypt"'),
        ({"min_cert_days": 120}, "certificate expires in 89 days (< 120)"),
    ],
)
def test_tls_certificate_fails(tls_site: TlsSite, overrides: dict[str, Any], failure: str) -> None:
    settings: dict[str, Any] = {"ca_bundle": str(tls_site.ca_bundle), "expect_issuer": tls_site.issuer}
    options = Options(tls_site.url, **{**settings, **overrides})
    status, detail = _one(options, None, "tls-certificate")
    assert status == FAIL and failure in detail, detail


def test_legacy_tls_refused_passes_and_accepted_fails(tls_site: TlsSite) -> None:
    assert _one(Options(tls_site.url), None, "legacy-tls")[0] == PASS
    status, detail = _one(Options(tls_site.legacy_url), None, "legacy-tls")
    assert status == FAIL and "accepted TLSv1" in detail, detail


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/redirect", PASS), ("/elsewhere", FAIL), ("/plain", FAIL)],
)
def test_http_redirects_to_https(tls_site: TlsSite, path: str, expected: str) -> None:
    options = Options(tls_site.url, ca_bundle=str(tls_site.ca_bundle), http_url=tls_site.http_url + path)
    status, detail = _one(options, None, "https-redirect")
    assert status == expected, detail


def test_tls_checks_skip_on_http_and_the_skip_fails() -> None:
    for check in TLS_CHECKS:
        status, detail = _one(Options("http://127.0.0.1:1"), None, check)
        assert status == FAIL and detail.startswith("skipped: needs an https:// base URL"), detail


def test_the_deploy_runs_every_check_and_rolls_back_on_failure() -> None:
    """deploy-stack.yml: the secret from Secrets Manager (not a GitHub secret), no skip allowed, a
    succeeded job required; a failed smoke test rolls back to the last release that passed and fails."""
    workflow = (REPO / ".github" / "workflows" / "deploy-stack.yml").read_text()
    steps = yaml.safe_load(workflow)["jobs"]["up"]["steps"]
    by_name = {step.get("name", ""): step for step in steps}
    smoke = by_name["Smoke test"]
    assert "--expect-job-status succeeded" in smoke["run"] and "--allow-skip" not in smoke["run"]
    assert (
        "secrets."
        not in workflow.split("- name: Smoke tenant's webhook secret")[1].split("- name: Smoke test")[0]
    )
    assert "aws secretsmanager get-secret-value" in by_name["Smoke tenant's webhook secret"]["run"]
    rollback = by_name["Roll back to the last release that passed"]
    assert "steps.last-good.outputs.sha" in rollback["if"] and rollback["with"]["work-dir"] == "rollback"
    assert "steps.smoke.outcome == 'failure'" in by_name["Last release that passed"]["if"]
    report = by_name["Fail with the smoke report"]
    assert "steps.smoke.outcome == 'failure'" in report["if"] and report["run"].rstrip().endswith("exit 1")
    names = [step.get("name", "") for step in steps]
    assert names.index("Smoke test") < names.index("Record the release that passed")
    assert names.index("Roll back to the last release that passed") < names.index(
        "Fail with the smoke report"
    )
