"""`make run` + `python -m app.smoke`: the local instance a person starts passes every smoke check, the
printed curl works as pasted, and the smoke test fails when the service is wrong."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.smoke import FAIL, PASS, SECURITY_HEADERS, SKIP, Options, main, report, run_smoke
from harness.net import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_run() -> Iterator[dict[str, Any]]:
    """`python -m harness.localrun` as `make run` starts it (a free port instead of 8000)."""
    directory = Path(tempfile.mkdtemp(prefix="localrun-"))
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
        "--cors-origin", local_run["cors_origin"], "--ticket-id", local_run["ticket_id"],
        "--expect-job-status", "succeeded", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    statuses = {check["name"]: check["status"] for check in document["checks"]}
    assert set(statuses.values()) == {PASS}, document
    assert len(statuses) == 12
    assert document["passed"] is True and document["summary"] == {"pass": 12, "fail": 0, "skip": 0}


def test_the_deploy_workflows_invocation_and_the_table(local_run: dict[str, Any]) -> None:
    """What .github/workflows/deploy-stack.yml runs (secret from the environment), then the table."""
    env = {**os.environ, "SMOKE_WEBHOOK_SECRET": local_run["secret"]}
    result = subprocess.run(
        [sys.executable, "-m", "app.smoke", "--base-url", local_run["url"], "--tenant", local_run["tenant"]],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED: 12 passed, 0 failed, 0 skipped" in result.stdout
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

    checks = {c.name: c for c in run_smoke(Options("https://api.example.com"), _transport(handler))}
    assert checks["health"].status == FAIL  # {"status": "healthy"} is not the contract
    assert checks["readiness"].status == FAIL
    assert checks["openapi docs"].status == FAIL
    assert checks["metrics"].status == FAIL  # https: must not be public
    assert checks["404 is JSON"].status == FAIL
    assert checks["security headers"].status == FAIL
    assert "x-frame-options" in checks["security headers"].detail
    assert checks["CORS preflight"].status == FAIL
    assert checks["missing signature rejected"].status == FAIL
    assert checks["bad signature rejected"].status == PASS
    assert checks["signed webhook accepted"].status == SKIP  # no credentials given
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
    assert all(c["status"] in {FAIL, SKIP} for c in document["checks"])


@pytest.mark.parametrize(
    "argv",
    [["--base-url", "ftp://x"], ["--base-url", "http://x", "--tenant", "t"], []],
)
def test_bad_usage_exits_2(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOKE_WEBHOOK_SECRET", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
