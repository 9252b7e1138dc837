"""Process-wide services the worker builds once: database, secrets cache, tenant directory, LLM client,
and the per-tenant share of the threads."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx

from app.clients.egress import guarded_transport
from app.clients.llm import LLMClient
from app.clients.servicedesk import ServiceDeskClient
from app.clients.zoho_oauth import AccessTokens, ZohoOAuth
from app.credentials import llm_api_key
from app.db.engine import Database, create_app_engine
from app.db.models import AuthMode
from app.prompts import Prompt, load_prompt
from app.secret_store import SecretStore
from app.settings import Settings, get_settings
from app.tenants import ServiceDeskSecret, TenantDirectory, TenantInfo
from app.worker.fairness import TenantSlots


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: SecretStore
    tenants: TenantDirectory
    llm: LLMClient
    prompt: Prompt
    slots: TenantSlots = field(default_factory=lambda: TenantSlots(1))  # from_settings sizes it
    sdp_transport: httpx.BaseTransport | None = None  # test seam
    # Cloud tenants' access tokens, shared by the threads, and the client that renews them (the same
    # egress guard and caps as ServiceDesk Plus calls: the accounts server is the tenant's choice too).
    sdp_tokens: AccessTokens = field(default_factory=AccessTokens)
    _accounts_http: httpx.Client | None = field(default=None, init=False, repr=False)
    _accounts_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        store = SecretStore.from_settings(settings)
        db = Database(create_app_engine(settings))
        llm = LLMClient(
            base_url=settings.llm_base_url,
            api_key=lambda: llm_api_key(settings, store),
            model=settings.llm_model,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            call_deadline=settings.llm_call_deadline_seconds,
            max_response_bytes=settings.llm_max_response_bytes,
        )
        return cls(
            settings,
            db,
            store,
            TenantDirectory(db, store),
            llm,
            load_prompt(settings.prompt_version),
            TenantSlots(settings.tenant_concurrency),
        )

    def servicedesk(self, tenant: TenantInfo, secret: ServiceDeskSecret) -> ServiceDeskClient:
        auth = None
        if tenant.auth_mode is AuthMode.OAUTH and secret.oauth is not None:
            auth = ZohoOAuth(
                secret.oauth, secret.servicedesk_credential, self.sdp_tokens, self.accounts_http()
            )
        return ServiceDeskClient(
            tenant.servicedesk_base_url,
            tenant.auth_mode,
            secret.servicedesk_credential,
            timeout=self.settings.sdp_timeout_seconds,
            max_attempts=self.settings.sdp_max_attempts,
            max_wait=self.settings.sdp_retry_max_wait_seconds,
            call_deadline=self.settings.sdp_call_deadline_seconds,
            max_response_bytes=self.settings.sdp_max_response_bytes,
            allow_loopback=self.settings.sdp_allow_loopback,
            transport=self.sdp_transport,
            auth=auth,
        )

    def accounts_http(self) -> httpx.Client:
        with self._accounts_lock:  # one client per process, whichever thread asks first
            if self._accounts_http is None:
                self._accounts_http = httpx.Client(
                    timeout=self.settings.sdp_timeout_seconds,
                    transport=self.sdp_transport
                    or guarded_transport(
                        allow_loopback=self.settings.sdp_allow_loopback,
                        max_response_bytes=self.settings.sdp_max_response_bytes,
                    ),
                    follow_redirects=False,
                )
            return self._accounts_http

    def close(self) -> None:
        if self._accounts_http is not None:
            self._accounts_http.close()
        self.llm.close()
        self.db.dispose()


_lock = threading.Lock()
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """Built on first use in the worker process (after fork, never inherited by a child)."""
    global _runtime  # noqa: PLW0603 - one runtime per process is the point
    with _lock:
        if _runtime is None:
            _runtime = Runtime.from_settings(get_settings())
        return _runtime
