"""`make run`: the whole service on this machine, without Docker, for a person to try.

Starts PostgreSQL, Redis and moto (Secrets Manager) on loopback, runs the migrations, creates a demo
tenant, starts the API and a worker exactly as the images do, and — unless real ones are configured —
a fake ServiceDesk Plus and a fake OpenAI-compatible LLM. Prints the URL and a ready-to-paste signed
curl, then runs until Ctrl-C (or SIGTERM) and removes everything it started.

Real upstreams: set LLM_BASE_URL + LLM_API_KEY (and LLM_MODEL) for a real LLM; pass
--servicedesk-url with SDP_CREDENTIAL (and --auth-mode) for a real ServiceDesk Plus.

Traces: --traces prints every trace's spans here as they arrive (a loopback OTLP receiver); or set
OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT for a local collector or Jaeger, OTEL_TRACES_EXPORTER=
console for one line per span in each service's log), which are passed on to the API and the worker.

Development only: it is part of the development harness, which no image carries.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from harness.fake_llm import FakeLLM
from harness.fake_servicedesk import FakeServiceDesk
from harness.moto_server import MotoServer
from harness.net import free_port
from harness.otlp_receiver import OtlpReceiver, ReceivedSpan
from harness.postgres import PostgresServer
from harness.processes import ApiProcess, WorkerProcess, run_cli
from harness.redis_server import RedisServer
from harness.stack import LLM_API_KEY, Stack, TenantFixture

DEMO_TENANT = "demo"
LOCAL_ORIGIN = "http://localhost:3000"


def signed_curl(base_url: str, tenant: str, secret: str, ticket_id: str) -> str:
    body = json.dumps({"ticket_id": ticket_id, "subject": "VPN down", "description": "Since 9am"})
    return (
        f"body={shlex.quote(body)}\n"
        f"sig=$(printf '%s' \"$body\" | openssl dgst -sha256 -hmac {shlex.quote(secret)} | sed 's/^.* //')\n"
        f"curl -i {base_url}/webhook/servicedesk -H 'Content-Type: application/json' \\\n"
        f'    -H \'X-Tenant-ID: {tenant}\' -H "X-ServiceDesk-Signature: sha256=$sig" -d "$body"'
    )


def print_spans(spans: list[ReceivedSpan]) -> None:
    """One line per span: enough to follow a webhook from the API to the note by its trace id."""
    for span in spans:
        parent = span.parent_span_id or "-" * 16
        sys.stdout.write(
            f"trace {span.trace_id} span {span.span_id} parent {parent} "
            f"{span.service:<16} {span.kind:<8} {span.name}\n"
        )
    sys.stdout.flush()


def tracing_env(receiver: OtlpReceiver | None) -> dict[str, str]:
    """The caller's OTEL_* settings, and the receiver's endpoint when --traces asked for one."""
    env = {key: value for key, value in os.environ.items() if key.startswith("OTEL_")}
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        env.setdefault("OTEL_BSP_SCHEDULE_DELAY", "500")  # spans on screen within a second
    return env


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.localrun", description="Run the whole service locally."
    )
    parser.add_argument("--port", type=int, default=8000, help="API port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--servicedesk-url", help="a real ServiceDesk Plus (credential: env SDP_CREDENTIAL)")
    parser.add_argument("--auth-mode", choices=("authtoken", "oauth"), default="authtoken")
    parser.add_argument("--ready-file", type=Path, help="write {url, tenant, secret, ticket_id} here when up")
    parser.add_argument("--traces", action="store_true", help="print the services' spans here as they arrive")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    real_llm = bool(os.environ.get("LLM_BASE_URL") and os.environ.get("LLM_API_KEY"))
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    say = sys.stderr.write
    cleanup: list[object] = []
    try:
        say("starting PostgreSQL, Redis, moto")
        postgres = PostgresServer().start()
        cleanup.append(postgres)
        redis = RedisServer().start()
        cleanup.append(redis)
        moto = MotoServer().start()
        cleanup.append(moto)
        servicedesk = FakeServiceDesk()
        servicedesk.start()
        cleanup.append(servicedesk)
        llm = FakeLLM(LLM_API_KEY)
        if not real_llm:
            llm.start()
            cleanup.append(llm)
        say(f", fake ServiceDesk Plus{'' if real_llm else ' and fake LLM'}\n")
        stack = Stack.create(postgres, redis, moto, servicedesk, llm)
        stack.env["APP_ENV"] = "local"
        # One allowed browser origin, so the CORS preflight can be tried both ways.
        stack.env["CORS_ORIGINS"] = LOCAL_ORIGIN
        receiver = OtlpReceiver(on_spans=print_spans).start() if args.traces else None
        if receiver is not None:
            cleanup.append(receiver)
        stack.env.update(tracing_env(receiver))
        if real_llm:
            for key in ("LLM_BASE_URL", "LLM_API_KEY", "LLM_MODEL"):
                if os.environ.get(key):
                    stack.env[key] = os.environ[key]
        stack.migrate()
        say("migrations at head\n")
        if args.servicedesk_url:
            credential = os.environ.get("SDP_CREDENTIAL", "")
            if not credential:
                say("--servicedesk-url needs the credential in env SDP_CREDENTIAL\n")
                return 2
            secret = f"whsec-{uuid.uuid4().hex}"
            result = run_cli(
                {**stack.env, "SDP_CREDENTIAL": credential, "WEBHOOK_SECRET": secret},
                "tenants", "add", DEMO_TENANT, "--name", "Demo", "--servicedesk-url", args.servicedesk_url,
                "--auth-mode", args.auth_mode,
            )  # fmt: skip
            if result.returncode != 0:
                say(f"tenants add failed: {result.stdout}{result.stderr}\n")
                return 2
            tenant = TenantFixture(DEMO_TENANT, secret, DEMO_TENANT, args.auth_mode, credential)
            ticket_id = "1001"  # an existing ticket of that ServiceDesk Plus: change it in the curl
        else:
            tenant = stack.add_tenant(DEMO_TENANT, args.auth_mode)
            ticket_id = stack.new_ticket(tenant, "VPN down", "Since 9am")
        port = args.port or free_port()
        api = ApiProcess(stack.env, port=port)
        worker = WorkerProcess(stack.env)
        cleanup += [worker, api]
        api.start_ready()
        worker.start()
        worker.wait_ready(60)
        url = api.url
        ready = {
            "url": url,
            "tenant": tenant.id,
            "secret": tenant.webhook_secret,
            "ticket_id": ticket_id,
            "cors_origin": LOCAL_ORIGIN,
        }
        sys.stdout.write(
            f"\nThe service is running: {url}  (docs {url}/docs, metrics {url}/metrics, "
            f"worker metrics http://127.0.0.1:{worker.metrics_port}/metrics)\n"
            f"Tenant {tenant.id!r}, webhook secret {tenant.webhook_secret}\n"
            f"API log {api.log_path}, worker log {worker.log_path}\n\n"
            f"Send a signed webhook:\n\n{signed_curl(url, tenant.id, tenant.webhook_secret, ticket_id)}\n\n"
            f"Smoke test: .venv/bin/python -m app.smoke --base-url {url} --tenant {tenant.id} "
            f"--secret {tenant.webhook_secret} --ticket-id {ticket_id} --allow-skip tls-certificate "
            f"--allow-skip legacy-tls --allow-skip https-redirect\n\nCtrl-C stops everything.\n"
        )
        sys.stdout.flush()
        if args.ready_file:
            args.ready_file.write_text(json.dumps(ready))
        while not stop.wait(1):
            if not api.alive() or not worker.alive():
                say("a service process exited; see its log above\n")
                return 1
        return 0
    finally:
        for item in reversed(cleanup):
            for method in ("destroy", "stop"):
                if hasattr(item, method):
                    getattr(item, method)()
                    break


if __name__ == "__main__":
    sys.exit(main())
