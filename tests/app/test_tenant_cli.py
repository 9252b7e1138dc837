"""The tenants CLI refuses what an operator must not do by accident: a ServiceDesk Plus URL that is not
https:// to a public host (the worker would send the tenant's credential there), and secrets on the
command line (visible in the process list and shell history)."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from sqlalchemy import text

from harness.moto_server import MotoServer
from harness.processes import run_cli
from harness.stack import Stack, TenantFixture

PUBLIC_URL = "https://sdp.acme.example"


def _add(
    stack: Stack, tenant_id: str, url: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        {**stack.env, "SDP_CREDENTIAL": f"sdp-{uuid.uuid4().hex}", **(env or {})},
        "tenants", "add", tenant_id, "--name", "T", "--servicedesk-url", url, "--auth-mode", "authtoken",
        *extra,
    )  # fmt: skip


def _exists(stack: Stack, tenant_id: str) -> bool:
    with stack.owner.connect() as conn:
        return (
            conn.execute(text("SELECT count(*) FROM tenants WHERE id = :id"), {"id": tenant_id}).scalar_one()
            == 1
        )


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


# Finding: the URL was not validated.


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://sdp.acme.example", "https://"),
        ("file:///etc/passwd", "https://"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://10.1.2.3", "private"),
        ("https://user:password@sdp.acme.example", "credentials"),
    ],
)
def test_add_refuses_a_url_that_is_not_https_to_a_public_host(stack: Stack, url: str, reason: str) -> None:
    tenant_id = f"tenant-url-{uuid.uuid4().hex[:6]}"
    result = _add(stack, tenant_id, url)
    assert result.returncode == 2, result.stdout + result.stderr
    line = _one_error_line(result.stderr)
    assert "--servicedesk-url" in line and reason in line, line
    assert "password" not in line  # the URL's credentials are not echoed
    assert not _exists(stack, tenant_id)


def test_url_rules() -> None:
    from app.tenants import servicedesk_url_problem

    refused = {
        "http://sdp.acme.example": "https://",
        "ftp://sdp.acme.example": "https://",
        "file:///etc/passwd": "https://",
        "https://": "host",
        "https:///path": "host",
        "https://sdp_acme.example": "host name",
        "https://sdp acme.example": "spaces",
        "https://[::1": "not a valid URL",
        "https://10.0.0.5": "private",
        "https://172.16.0.1": "private",
        "https://192.168.1.10:8443/sdp": "private",
        "https://100.64.0.1": "not a public",
        "https://169.254.169.254": "link-local",
        "https://[fe80::1]": "link-local",
        "https://127.0.0.1:8080": "loopback",
        "https://127.1": "loopback",  # inet_aton's short form reaches 127.0.0.1 too
        "https://2130706433": "loopback",
        "https://0x7f.0.0.1": "loopback",
        "https://[::1]": "loopback",
        "https://localhost": "loopback",
        "https://api.localhost.": "loopback",
        "https://[::ffff:10.0.0.1]": "private",
        "https://224.0.0.1": "multicast",
        "https://[ff02::1]": "multicast",
        "https://0.0.0.0": "not a public",
        "https://u:p@sdp.acme.example": "credentials",
        "https://u@sdp.acme.example": "credentials",
        "https://sdp.acme.example/#x": "fragment",
        "https://sdp.acme.example/?a=1": "query",
        "https://sdp.acme.example:99999": "port",
        "https://sdp.acme.example\\@evil.example": "backslashes",
        " https://sdp.acme.example": "https://",
    }
    for url, reason in refused.items():
        problem = servicedesk_url_problem(url, allow_loopback=False)
        assert problem is not None and reason in problem, (url, problem)
    for url in (
        "https://sdp.acme.example",
        "https://sdp.acme.example:8443/sdp/",
        "https://SDP.Acme.Example",
        "https://93.184.215.14",
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443",
    ):
        assert servicedesk_url_problem(url, allow_loopback=False) is None, url
    # Loopback, for a local run against a fake ServiceDesk Plus, only when the setting allows it.
    for url in ("http://127.0.0.1:8080/tenant-a", "https://127.0.0.1:8443", "http://[::1]:8080"):
        assert servicedesk_url_problem(url, allow_loopback=True) is None, url
        assert servicedesk_url_problem(url, allow_loopback=False) is not None, url
    assert servicedesk_url_problem("http://10.0.0.5", allow_loopback=True) is not None
    assert servicedesk_url_problem("http://sdp.acme.example", allow_loopback=True) is not None


def test_loopback_needs_the_local_run_setting(stack: Stack) -> None:
    url = stack.servicedesk.base_url("loopback")  # http://127.0.0.1:<port>/loopback
    refused = _add(stack, f"tenant-lo-{uuid.uuid4().hex[:6]}", url, env={"SDP_ALLOW_LOOPBACK": "false"})
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "loopback" in _one_error_line(refused.stderr)
    accepted = _add(stack, f"tenant-lo-{uuid.uuid4().hex[:6]}", url, env={"SDP_ALLOW_LOOPBACK": "true"})
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_the_loopback_setting_is_refused_in_production() -> None:
    from app.settings import Settings, SettingsError, load_settings

    assert Settings.model_fields["sdp_allow_loopback"].default is False
    with pytest.MonkeyPatch.context() as env:
        for key, value in {
            "APP_ENV": "production",
            "SDP_ALLOW_LOOPBACK": "true",
            "DATABASE_HOST": "db.internal",
            "DATABASE_USER": "app",
            "DATABASE_IAM_AUTH": "true",
            "REDIS_HOST": "cache.internal",
            "REDIS_TLS": "true",
            "REDIS_AUTH_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:r",
            "LLM_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:l",
        }.items():
            env.setenv(key, value)
        with pytest.raises(SettingsError, match="SDP_ALLOW_LOOPBACK"):
            load_settings()


# Finding: secrets were accepted on the command line.


def test_a_credential_on_the_command_line_is_refused(stack: Stack) -> None:
    tenant_id = f"tenant-argv-{uuid.uuid4().hex[:6]}"
    value = f"sdp-argv-{uuid.uuid4().hex}"
    for args in (("--credential", value), (f"--credential={value}",)):
        result = _add(stack, tenant_id, PUBLIC_URL, *args)
        assert result.returncode == 2, result.stdout + result.stderr
        line = _one_error_line(result.stderr)
        assert "--credential" in line and "command line" in line and "SDP_CREDENTIAL" in line, line
        assert value not in result.stdout + result.stderr
    assert not _exists(stack, tenant_id)


def test_a_webhook_secret_on_the_command_line_is_refused(
    stack: Stack, tenant_a: TenantFixture, moto: MotoServer
) -> None:
    value = f"whsec-argv-{uuid.uuid4().hex}"
    tenant_id = f"tenant-argv-{uuid.uuid4().hex[:6]}"
    added = _add(stack, tenant_id, PUBLIC_URL, "--webhook-secret", value)
    rotated = run_cli(stack.env, "tenants", "rotate-secret", tenant_a.id, "--webhook-secret", value)
    for result in (added, rotated):
        assert result.returncode == 2, result.stdout + result.stderr
        line = _one_error_line(result.stderr)
        assert "--webhook-secret" in line and "command line" in line and "WEBHOOK_SECRET" in line, line
        assert value not in result.stdout + result.stderr
    assert not _exists(stack, tenant_id)
    secrets = json.loads(
        moto.secretsmanager().get_secret_value(SecretId=f"{stack.secret_prefix}webhook/{tenant_a.id}")[
            "SecretString"
        ]
    )
    assert value not in secrets["webhook_secrets"]


def test_secrets_can_come_from_stdin_with_a_flag_and_are_never_guessed_from_it(
    stack: Stack, moto: MotoServer
) -> None:
    tenant_id = f"tenant-stdin-{uuid.uuid4().hex[:6]}"
    credential, secret = f"sdp-stdin-{uuid.uuid4().hex}", f"whsec-stdin-{uuid.uuid4().hex}"
    without_flag = run_cli(
        {k: v for k, v in stack.env.items() if k != "SDP_CREDENTIAL"},
        "tenants", "add", tenant_id, "--name", "T", "--servicedesk-url", PUBLIC_URL, "--auth-mode", "oauth",
        input_text=f"{credential}\n",
    )  # fmt: skip
    assert without_flag.returncode == 2, without_flag.stdout + without_flag.stderr
    assert "--credential-stdin" in _one_error_line(without_flag.stderr)
    added = run_cli(
        stack.env,
        "tenants", "add", tenant_id, "--name", "T", "--servicedesk-url", PUBLIC_URL, "--auth-mode", "oauth",
        "--credential-stdin", "--webhook-secret-stdin", input_text=f"{credential}\n{secret}\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    assert secret not in added.stdout and credential not in added.stdout
    sm = moto.secretsmanager()
    stored = json.loads(
        sm.get_secret_value(SecretId=f"{stack.secret_prefix}servicedesk/{tenant_id}")["SecretString"]
    )
    assert stored == {"servicedesk_credential": credential}
    stored = json.loads(
        sm.get_secret_value(SecretId=f"{stack.secret_prefix}webhook/{tenant_id}")["SecretString"]
    )
    assert stored == {"webhook_secrets": [secret]}
