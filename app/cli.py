"""`python -m app ...`: migrations and tenant administration (runs as the database owner).

Secrets never come from the command line, where the process list and shell history show them: the
ServiceDesk Plus credential comes from env SDP_CREDENTIAL, a hidden prompt or (`--credential-stdin`)
the first line of stdin; a webhook secret from env WEBHOOK_SECRET or (`--webhook-secret-stdin`) stdin,
and is generated otherwise. `--credential VALUE` or `--webhook-secret VALUE` is an error (exit 2).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from app.clients.zoho_oauth import OAuthClient
from app.db.engine import Database, create_owner_engine
from app.db.migrate import SchemaAheadError, migrate
from app.db.models import AuthMode
from app.log import configure_logging
from app.secret_store import SecretStore, SecretUnavailableError
from app.settings import Settings, SettingsError, get_settings
from app.tenants import (
    MAX_WEBHOOK_SECRETS,
    SplitError,
    add_tenant,
    list_tenants,
    new_webhook_secret,
    retire_secrets,
    rotate_secret,
    servicedesk_url_problem,
    set_enabled,
    split_secrets,
)

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="AI agents service administration.")
tenants_cli = typer.Typer(no_args_is_help=True, help="Manage tenants and their Secrets Manager secrets.")
cli.add_typer(tenants_cli, name="tenants")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    """One line on stderr (never wrapped, never read as markup), then exit with `code`."""
    err.print(Text.assemble(("error:", "red"), " ", message))
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        settings = get_settings()
    except SettingsError as error:
        raise _fail(str(error)) from None
    configure_logging(settings.log_level)
    return settings


@contextmanager
def _admin(settings: Settings | None = None) -> Iterator[tuple[Settings, Database, SecretStore]]:
    settings = settings or _settings()
    store = SecretStore.from_settings(settings)
    try:
        db = Database(create_owner_engine(settings, store))
    except (SettingsError, SecretUnavailableError) as error:
        raise _fail(str(error)) from None
    try:
        yield settings, db, store
    except SecretUnavailableError as error:
        raise _fail(str(error), 1) from None
    finally:
        db.dispose()


def _message(error: ValueError) -> str:
    """One line for the operator: a validation error's first complaint, without pydantic's frame."""
    if isinstance(error, ValidationError):
        return str(error.errors()[0]["msg"]).removeprefix("Value error, ")
    return str(error)


# Secrets: never on the command line.

_CREDENTIAL_SOURCES = "set SDP_CREDENTIAL, answer the hidden prompt, or pass --credential-stdin"
_WEBHOOK_SECRET_SOURCES = "set WEBHOOK_SECRET or pass --webhook-secret-stdin (default: generated)"  # noqa: S105
_CLIENT_SECRET_SOURCES = "set SDP_OAUTH_CLIENT_SECRET or answer the hidden prompt"  # noqa: S105


def _refuse_on_command_line(ctx: typer.Context, parameter: str, option: str, sources: str) -> None:
    source = ctx.get_parameter_source(parameter)
    if source is not None and source.name == "COMMANDLINE":  # not the environment, a prompt or stdin
        raise _fail(
            f"{option} on the command line is refused: the process list and shell history show it"
            f" (treat that value as exposed); {sources}"
        )


def _stdin_line(what: str) -> str:
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise _fail(f"stdin gave no {what}")
    return line


def _credential(from_env: str | None, *, from_stdin: bool) -> str:
    if from_stdin:
        return _stdin_line("ServiceDesk Plus credential")
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise _fail(f"no ServiceDesk Plus credential: {_CREDENTIAL_SOURCES}")
    value: str = typer.prompt("ServiceDesk Plus credential", hide_input=True)
    return value


def _oauth_client(
    client_id: str | None, accounts_url: str | None, client_secret: str | None
) -> OAuthClient | None:
    """The OAuth client of a cloud tenant's refresh token, or None (authtoken, or a static token)."""
    if client_id is None and accounts_url is None:
        return None
    if client_id is None or accounts_url is None:
        raise _fail("--oauth-client-id and --oauth-accounts-url go together")
    if client_secret is None and not sys.stdin.isatty():
        raise _fail(f"no OAuth client secret: {_CLIENT_SECRET_SOURCES}")
    secret: str = client_secret or typer.prompt("OAuth client secret", hide_input=True)
    try:
        return OAuthClient(client_id=client_id, client_secret=secret, accounts_url=accounts_url)
    except ValidationError as error:
        raise _fail(f"invalid OAuth client: {error.errors()[0]['msg']}") from None


CredentialOption = Annotated[
    str | None, typer.Option("--credential", envvar="SDP_CREDENTIAL", hidden=True, show_default=False)
]
CredentialStdin = Annotated[
    bool,
    typer.Option("--credential-stdin", help="Read the ServiceDesk Plus credential from stdin's first line"),
]
WebhookSecretOption = Annotated[
    str | None, typer.Option("--webhook-secret", envvar="WEBHOOK_SECRET", hidden=True, show_default=False)
]
WebhookSecretStdin = Annotated[
    bool,
    typer.Option(
        "--webhook-secret-stdin",
        help="Read the webhook secret from stdin's next line (after the credential's, if both)",
    ),
]


@cli.command("migrate")
def migrate_command() -> None:
    """Upgrade the schema to head (under an advisory lock) and ensure the app role and its grants."""
    settings = _settings()
    try:
        result = migrate(settings, SecretStore.from_settings(settings))
    except (SettingsError, SecretUnavailableError, SchemaAheadError) as error:
        raise _fail(str(error)) from None
    out.print(result.message)


@tenants_cli.command("add")
def tenants_add(
    ctx: typer.Context,
    tenant_id: Annotated[str, typer.Argument(help="Tenant id (letters, digits, - and _)")],
    *,
    name: Annotated[str, typer.Option(help="Display name")],
    servicedesk_url: Annotated[
        str, typer.Option(help="ServiceDesk Plus base URL: https:// to a host name or a public address")
    ],
    auth_mode: Annotated[AuthMode, typer.Option(help="authtoken (on-premises) or oauth (cloud)")],
    credential: CredentialOption = None,
    credential_stdin: CredentialStdin = False,
    webhook_secret: WebhookSecretOption = None,
    webhook_secret_stdin: WebhookSecretStdin = False,
    oauth_client_id: Annotated[
        str | None, typer.Option(help="Cloud: the OAuth client the refresh token was issued to")
    ] = None,
    oauth_accounts_url: Annotated[
        str | None, typer.Option(help="Cloud: its Zoho accounts server, e.g. https://accounts.zoho.eu")
    ] = None,
    oauth_client_secret: Annotated[
        str | None,
        typer.Option(
            "--oauth-client-secret", envvar="SDP_OAUTH_CLIENT_SECRET", hidden=True, show_default=False
        ),
    ] = None,
) -> None:
    """Create a tenant, or update one's name, URL, auth mode and credential (its webhook secrets are
    kept unless WEBHOOK_SECRET gives a new one).

    The credential comes from env SDP_CREDENTIAL, a hidden prompt, or stdin (--credential-stdin); the
    webhook secret from env WEBHOOK_SECRET or stdin (--webhook-secret-stdin), else it is generated and
    printed once. Never on the command line. A cloud tenant (--auth-mode oauth) should be added with its
    OAuth client (--oauth-client-id, --oauth-accounts-url, the client secret from env
    SDP_OAUTH_CLIENT_SECRET or a hidden prompt) and its refresh token as the credential: the worker then
    renews access tokens itself. A bare access token as the credential stops working within the hour."""
    _refuse_on_command_line(ctx, "credential", "--credential", _CREDENTIAL_SOURCES)
    _refuse_on_command_line(ctx, "webhook_secret", "--webhook-secret", _WEBHOOK_SECRET_SOURCES)
    _refuse_on_command_line(ctx, "oauth_client_secret", "--oauth-client-secret", _CLIENT_SECRET_SOURCES)
    settings = _settings()
    if problem := servicedesk_url_problem(servicedesk_url, allow_loopback=settings.sdp_allow_loopback):
        raise _fail(f"invalid --servicedesk-url: {problem}")
    oauth = _oauth_client(oauth_client_id, oauth_accounts_url, oauth_client_secret)
    sdp_credential = _credential(credential, from_stdin=credential_stdin)
    secret = _stdin_line("webhook secret") if webhook_secret_stdin else webhook_secret
    with _admin(settings) as (_, db, store):
        try:
            saved = add_tenant(
                db,
                store,
                prefix=settings.tenant_secret_prefix,
                tenant_id=tenant_id,
                name=name,
                servicedesk_base_url=servicedesk_url,
                auth_mode=auth_mode,
                webhook_secret=secret,
                credential=sdp_credential,
                allow_loopback=settings.sdp_allow_loopback,
                oauth=oauth,
            )
        except ValueError as error:
            raise _fail(_message(error)) from None
    tenant = saved.tenant
    out.print(f"tenant {tenant.id} {'created' if saved.created else 'updated'}; secrets: {tenant.layout}")
    if saved.generated_secret is not None:
        # Printed once, to configure the ServiceDesk Plus webhook; it is not stored anywhere else.
        out.print(f"webhook secret: {saved.generated_secret}", highlight=False)
    elif secret is None:
        out.print(f"webhook secrets kept ({saved.webhook_secrets} accepted)")


@tenants_cli.command("list")
def tenants_list() -> None:
    """List tenants (no secrets)."""
    with _admin() as (_, db, _):
        rows = list_tenants(db)
    table = Table("id", "name", "servicedesk url", "auth", "enabled", "secrets")
    for tenant in rows:
        table.add_row(
            tenant.id,
            tenant.name,
            tenant.servicedesk_base_url,
            tenant.auth_mode.value,
            "yes" if tenant.enabled else "no",
            tenant.layout,
        )
    out.print(table)


@tenants_cli.command("rotate-secret")
def tenants_rotate(
    ctx: typer.Context,
    tenant_id: str,
    *,
    webhook_secret: WebhookSecretOption = None,
    webhook_secret_stdin: WebhookSecretStdin = False,
    keep: Annotated[
        int,
        typer.Option(
            help=f"Secrets accepted after the rotation, the new one included (2-{MAX_WEBHOOK_SECRETS})"
        ),
    ] = 2,
) -> None:
    """Add a new webhook secret in front (generated and printed once, or env WEBHOOK_SECRET); the
    previous one stays valid. Set the new one in ServiceDesk Plus, then run `tenants retire-secret`."""
    _refuse_on_command_line(ctx, "webhook_secret", "--webhook-secret", _WEBHOOK_SECRET_SOURCES)
    if keep < 2:
        raise _fail(
            f"--keep {keep} would drop the secret ServiceDesk Plus signs with now: rotate (the previous"
            f" secret stays valid), set the new one in ServiceDesk Plus, then run"
            f" `tenants retire-secret {tenant_id}`"
        )
    if keep > MAX_WEBHOOK_SECRETS:
        raise _fail(f"--keep must be 2 to {MAX_WEBHOOK_SECRETS}")
    given = _stdin_line("webhook secret") if webhook_secret_stdin else webhook_secret
    secret = given or new_webhook_secret()
    with _admin() as (_, db, store):
        try:
            count = rotate_secret(db, store, tenant_id, secret, keep=keep)
        except LookupError:
            raise _fail(f"no tenant {tenant_id}", 1) from None
        except ValueError as error:
            raise _fail(_message(error)) from None
    out.print(f"tenant {tenant_id}: {count} webhook secrets accepted, the new one first")
    if given is None:
        out.print(f"new webhook secret: {secret}", highlight=False)


@tenants_cli.command("retire-secret")
def tenants_retire(tenant_id: str) -> None:
    """Drop the old webhook secret(s), keeping only the newest (the one the last rotate-secret added).
    Run it once ServiceDesk Plus signs with the new secret. Never generates a secret."""
    with _admin() as (_, db, store):
        try:
            retired = retire_secrets(db, store, tenant_id)
        except LookupError:
            raise _fail(f"no tenant {tenant_id}", 1) from None
    if retired:
        out.print(f"tenant {tenant_id}: retired {retired} old webhook secret(s); only the newest is accepted")
    else:
        out.print(f"tenant {tenant_id}: nothing to retire (one webhook secret accepted)")


@tenants_cli.command("split-secrets")
def tenants_split(
    tenant_id: Annotated[str | None, typer.Argument(help="The tenant (or --all)")] = None,
    *,
    all_tenants: Annotated[bool, typer.Option("--all", help="Every tenant")] = False,
    delete_combined: Annotated[
        bool,
        typer.Option(
            help="Then schedule the deletion of each combined secret (run after the roles narrowed)"
        ),
    ] = False,
    recovery_days: Annotated[
        int, typer.Option(min=7, max=30, help="Days a deleted combined secret can still be restored")
    ] = 30,
) -> None:
    """Move tenants from one combined secret to two (webhook secrets for the API, credential for the
    worker): copy, read back, record and announce; the combined secret is kept until --delete-combined.
    Idempotent. See docs/runbook.md, "Split tenant secrets"."""
    if (tenant_id is None) == (not all_tenants):
        raise _fail("name one tenant or pass --all")
    failed = 0
    with _admin() as (settings, db, store):
        ids = [tenant.id for tenant in list_tenants(db)] if all_tenants else [tenant_id or ""]
        for each in ids:
            try:
                outcome = split_secrets(
                    db,
                    store,
                    prefix=settings.tenant_secret_prefix,
                    tenant_id=each,
                    delete_combined=delete_combined,
                    recovery_days=recovery_days,
                )
            except LookupError:
                raise _fail(f"no tenant {each}", 1) from None
            except (SplitError, SecretUnavailableError) as error:
                failed += 1
                err.print(Text.assemble(("error:", "red"), f" tenant {each}: {error}"))
                continue
            out.print(f"tenant {each}: {outcome}", highlight=False)
    if failed:
        raise typer.Exit(1)


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
