"""`python -m app ...`: migrations and tenant administration (runs as the database owner)."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.db.engine import Database, create_owner_engine
from app.db.migrate import migrate
from app.db.models import AuthMode
from app.log import configure_logging
from app.secret_store import SecretStore, SecretUnavailableError
from app.settings import Settings, SettingsError, get_settings
from app.tenants import add_tenant, list_tenants, rotate_secret, set_enabled

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="AI agents service administration.")
tenants_cli = typer.Typer(no_args_is_help=True, help="Manage tenants and their Secrets Manager secrets.")
cli.add_typer(tenants_cli, name="tenants")
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        settings = get_settings()
    except SettingsError as error:
        raise _fail(str(error)) from None
    configure_logging(settings.log_level)
    return settings


@contextmanager
def _admin() -> Iterator[tuple[Settings, Database, SecretStore]]:
    settings = _settings()
    store = SecretStore.from_settings(settings)
    try:
        db = Database(create_owner_engine(settings, store))
    except (SettingsError, SecretUnavailableError) as error:
        raise _fail(str(error)) from None
    try:
        yield settings, db, store
    finally:
        db.dispose()


def _new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


@cli.command("migrate")
def migrate_command() -> None:
    """Upgrade the schema to head (under an advisory lock) and ensure the app role and its grants."""
    settings = _settings()
    try:
        revision = migrate(settings, SecretStore.from_settings(settings))
    except (SettingsError, SecretUnavailableError) as error:
        raise _fail(str(error)) from None
    out.print(f"schema at revision {revision}")


@tenants_cli.command("add")
def tenants_add(
    tenant_id: Annotated[str, typer.Argument(help="Tenant id (letters, digits, - and _)")],
    *,
    name: Annotated[str, typer.Option(help="Display name")],
    servicedesk_url: Annotated[str, typer.Option(help="ServiceDesk Plus base URL")],
    auth_mode: Annotated[AuthMode, typer.Option(help="authtoken (on-premises) or oauth (cloud)")],
    credential: Annotated[
        str,
        typer.Option(
            envvar="SDP_CREDENTIAL",
            prompt="ServiceDesk Plus credential",
            hide_input=True,
            help="SDP auth token or OAuth token (prompted; or env SDP_CREDENTIAL, never argv)",
        ),
    ],
    webhook_secret: Annotated[
        str | None, typer.Option(envvar="WEBHOOK_SECRET", help="Webhook signing secret (default: generated)")
    ] = None,
) -> None:
    """Create or update a tenant and its Secrets Manager secret."""
    secret = webhook_secret or _new_webhook_secret()
    with _admin() as (settings, db, store):
        try:
            tenant = add_tenant(
                db,
                store,
                prefix=settings.tenant_secret_prefix,
                tenant_id=tenant_id,
                name=name,
                servicedesk_base_url=servicedesk_url,
                auth_mode=auth_mode,
                webhook_secret=secret,
                credential=credential,
            )
        except ValueError as error:
            raise _fail(str(error)) from None
    out.print(f"tenant {tenant.id} saved; secret {tenant.secret_id}")
    if webhook_secret is None:
        # Printed once, to configure the ServiceDesk Plus webhook; it is not stored anywhere else.
        out.print(f"webhook secret: {secret}", highlight=False)


@tenants_cli.command("list")
def tenants_list() -> None:
    """List tenants (no secrets)."""
    with _admin() as (_, db, _):
        rows = list_tenants(db)
    table = Table("id", "name", "servicedesk url", "auth", "enabled", "secret")
    for tenant in rows:
        table.add_row(
            tenant.id,
            tenant.name,
            tenant.servicedesk_base_url,
            tenant.auth_mode.value,
            "yes" if tenant.enabled else "no",
            tenant.secret_id,
        )
    out.print(table)


@tenants_cli.command("rotate-secret")
def tenants_rotate(
    tenant_id: str,
    *,
    webhook_secret: Annotated[
        str | None, typer.Option(envvar="WEBHOOK_SECRET", help="New secret (default: generated)")
    ] = None,
    keep: Annotated[int, typer.Option(min=1, max=5, help="Secrets accepted after rotation")] = 2,
) -> None:
    """Add a new webhook secret in front; the previous one stays valid until the next rotation
    (run again with --keep 1 to retire it once ServiceDesk Plus uses the new one)."""
    secret = webhook_secret or _new_webhook_secret()
    with _admin() as (_, db, store):
        try:
            count = rotate_secret(db, store, tenant_id, secret, keep=keep)
        except LookupError:
            raise _fail(f"no tenant {tenant_id}", 1) from None
    out.print(f"tenant {tenant_id}: {count} webhook secret(s) accepted")
    if webhook_secret is None:
        out.print(f"new webhook secret: {secret}", highlight=False)


@tenants_cli.command("disable")
def tenants_disable(tenant_id: str) -> None:
    """Refuse the tenant's webhooks (401) and stop processing its jobs."""
    _toggle(tenant_id, enabled=False)


@tenants_cli.command("enable")
def tenants_enable(tenant_id: str) -> None:
    """Accept the tenant's webhooks again."""
    _toggle(tenant_id, enabled=True)


def _toggle(tenant_id: str, *, enabled: bool) -> None:
    with _admin() as (_, db, _):
        try:
            set_enabled(db, tenant_id, enabled=enabled)
        except LookupError:
            raise _fail(f"no tenant {tenant_id}", 1) from None
    out.print(f"tenant {tenant_id} {'enabled' if enabled else 'disabled'}")


def main() -> None:
    cli(prog_name=f"{sys.executable.rsplit('/', 1)[-1]} -m app")
