"""docker-compose.yml against the Compose specification's JSON schema (the copy the check-jsonschema
package ships and keeps current), plus what the schema cannot say: the operational requirements."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any

import jsonschema.validators
import pytest
import yaml

from components.workloads.contract import RUN_AS
from tests.containers.images import REPO

SCHEMA = json.loads(
    files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
)
# The draft the schema declares ($schema): 2020-12 today, whose unevaluatedProperties refuses unknown keys.
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = ("migrations", "api", "worker")
LONG_RUNNING = ("postgres", "redis", "moto", "api", "worker")


def test_valid_against_the_compose_specification() -> None:
    errors = sorted(VALIDATOR.iter_errors(COMPOSE), key=str)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


def test_the_schema_check_can_fail() -> None:
    broken = {**COMPOSE, "services": {**SERVICES, "api": {**SERVICES["api"], "restart_policy": "always"}}}
    assert list(VALIDATOR.iter_errors(broken))


def test_services_and_pinned_dependencies() -> None:
    assert set(SERVICES) == {"postgres", "redis", "moto", "migrations", "api", "worker"}
    assert re.match(r"^postgres:17\.\d+[\w.-]*@sha256:[0-9a-f]{64}$", SERVICES["postgres"]["image"])
    assert re.match(r"^redis:7\.\d+[\w.-]*@sha256:[0-9a-f]{64}$", SERVICES["redis"]["image"])
    for name in OURS:
        build = SERVICES[name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == f"app/docker/{name}.Dockerfile"
        assert (REPO / build["dockerfile"]).is_file()


def test_migrations_run_once_before_api_and_worker() -> None:
    assert SERVICES["migrations"]["restart"] == "no"
    assert SERVICES["migrations"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = SERVICES[name]["depends_on"]
        assert depends["migrations"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_health_restart_limits_and_log_rotation(name: str) -> None:
    service = SERVICES[name]
    assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    assert service["restart"] == "unless-stopped"
    limits = service["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]
    logging = service["logging"]
    assert logging["driver"] == "json-file"
    assert logging["options"]["max-size"] and logging["options"]["max-file"]


def test_named_volumes_for_state() -> None:
    assert set(COMPOSE["volumes"]) == {"pgdata", "redisdata"}
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "redisdata:/data" in SERVICES["redis"]["volumes"]


@pytest.mark.parametrize("name", OURS)
def test_service_containers_hardened_like_the_pods(name: str) -> None:
    service = SERVICES[name]
    assert service["user"] == f"{RUN_AS}:{RUN_AS}"
    assert service["read_only"] is True
    assert any(str(t).startswith("/tmp") for t in service["tmpfs"])
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["deploy"]["resources"]["limits"]
    assert service["logging"]["driver"] == "json-file"


def test_secrets_only_from_the_env_file() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    for name in OURS:
        assert SERVICES[name]["env_file"] == [{"path": ".env", "required": True}]
    # Every password is interpolated from .env, required (`:?`), never written here.
    for variable in ("POSTGRES_PASSWORD", "APP_DB_PASSWORD", "REDIS_PASSWORD"):
        assert re.search(r"\$\{" + variable + r":\?", text), variable
    for match in re.finditer(r"(?im)^\s*\w*(password|secret|api_key)\w*:\s*(\S+)", text):
        if match.group(0).strip() == "AWS_SECRET_ACCESS_KEY: local":
            continue  # moto's dummy credential: moto accepts any key, and AWS is never reached
        assert match.group(2).startswith(("${", '"$$')), match.group(0)
    example = (REPO / ".env.example").read_text()
    for variable in ("POSTGRES_PASSWORD", "APP_DB_PASSWORD", "REDIS_PASSWORD", "LLM_API_KEY"):
        assert re.search(rf"^{variable}=REPLACE_WITH_", example, re.MULTILINE), f"{variable} in .env.example"
    assert ".env" in (REPO / ".gitignore").read_text().split(), ".env is never committed"
