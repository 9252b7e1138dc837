"""TenantAuthenticator's rules in-process (app/api/tenant_auth.py): no servers, a clock of our own.

tests/app/test_tenant_auth.py proves the rules through the real API and its revocation bound; this file
pins each rule of the authenticator itself (what is refused, what is cached and for how long, when a
secret is refetched, the look-up budget) against an in-memory directory, so a changed condition
fails in milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from app.api import tenant_auth, tenant_listener
from app.api.tenant_auth import (
    LOOKUP_BURST,
    LOOKUPS_PER_SECOND,
    MAX_ENTRIES,
    REVOCATION_BOUND_SECONDS,
    ROW_TTL_SECONDS,
    SECRET_REFRESH_SECONDS,
    LookupsExhausted,
    TenantAuthenticator,
    TokenBucket,
    Unauthorized,
)
from app.db.models import AuthMode
from app.metrics import TENANT_LOOKUPS
from app.signing import sign
from app.tenants import TenantInfo, webhook_secret_ids

PREFIX = "ai-agents/tenants/"
MESSAGE = b'{"ticket_id": "1"}'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Store:
    """What the authenticator uses of the secret store: its TTL and invalidation."""

    ttl = 300.0

    def __init__(self) -> None:
        self.invalidated: list[str] = []

    def invalidate(self, secret_id: str) -> None:
        self.invalidated.append(secret_id)


class Directory:
    """In-memory tenants and webhook secrets; `cached` stands for the secret store's cache."""

    def __init__(self) -> None:
        self.rows: dict[str, TenantInfo] = {}
        self.secrets: dict[str, list[str]] = {}
        self.cached: dict[str, list[str]] = {}
        self.age: float | None = None
        self.gets: list[str] = []
        self.fetches: list[float | None] = []
        self.cache_ages: list[float | None] = []

    def add(self, tenant_id: str, secret: str, *, enabled: bool = True) -> TenantInfo:
        info = TenantInfo(
            tenant_id, tenant_id, "http://sdp.invalid", AuthMode.AUTHTOKEN, f"old/{tenant_id}", enabled
        )
        self.rows[tenant_id] = info
        self.secrets[tenant_id] = [secret]
        return info

    def get(self, tenant_id: str) -> TenantInfo | None:
        self.gets.append(tenant_id)
        return self.rows.get(tenant_id)

    def cached_webhook_secrets(self, tenant: TenantInfo, *, max_age: float | None = None) -> list[str] | None:
        self.cache_ages.append(max_age)
        if self.age is not None and max_age is not None and self.age > max_age:
            return None  # the cached copy is older than the caller accepts
        return self.cached.get(tenant.id)

    def webhook_secrets(self, tenant: TenantInfo, *, max_age: float | None = None) -> list[str]:
        self.fetches.append(max_age)
        return self.secrets[tenant.id]

    def webhook_secrets_age(self, tenant: TenantInfo) -> float | None:
        return self.age if tenant.id in self.cached else None


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(tenant_auth, "time", fake)
    monkeypatch.setattr(tenant_listener, "time", fake)  # the listener's liveness, on the same clock
    return fake


@pytest.fixture
def directory() -> Directory:
    return Directory()


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def auth(clock: Clock, directory: Directory, store: Store) -> TenantAuthenticator:
    return TenantAuthenticator(
        directory,  # type: ignore[arg-type]
        store,  # type: ignore[arg-type]
        secret_prefix=PREFIX,
        connect_kwargs=dict,
    )


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def live(auth: TenantAuthenticator, clock: Clock) -> None:
    """As if the change listener had just heard from the database."""
    auth.listener._last_contact = clock.now


def lookups(result: str) -> float:
    return TENANT_LOOKUPS.labels(result)._value.get()


def test_the_right_signature_returns_the_tenant(auth: TenantAuthenticator, directory: Directory) -> None:
    acme = directory.add("acme", "s3cret")
    assert run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE)) == acme


@pytest.mark.parametrize(
    ("tenant_id", "signature"),
    [
        (None, "sign"),
        ("", "sign"),
        ("acme", None),
        ("acme", ""),
        ("ACME!", "sign"),  # not a valid tenant id: never looked up
    ],
)
def test_missing_or_malformed_credentials_are_refused_without_a_look_up(
    auth: TenantAuthenticator, directory: Directory, tenant_id: str | None, signature: str | None
) -> None:
    directory.add("acme", "s3cret")
    directory.add("ACME!", "s3cret")
    signed = sign("s3cret", MESSAGE) if signature == "sign" else signature
    with pytest.raises(Unauthorized):
        run(auth.authenticate(tenant_id, signed, MESSAGE))
    assert directory.gets == []


def test_wrong_signature_unknown_and_disabled_tenants_are_refused(
    auth: TenantAuthenticator, directory: Directory
) -> None:
    directory.add("acme", "s3cret")
    directory.add("off", "s3cret", enabled=False)
    for tenant_id, secret in (("acme", "wrong"), ("nobody", "s3cret"), ("off", "s3cret")):
        with pytest.raises(Unauthorized):
            run(auth.authenticate(tenant_id, sign(secret, MESSAGE), MESSAGE))


def test_cached_secrets_are_used_with_the_store_ttl_while_announcements_arrive(
    auth: TenantAuthenticator, directory: Directory, clock: Clock
) -> None:
    directory.add("acme", "s3cret")
    directory.cached["acme"] = ["s3cret"]
    live(auth, clock)
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    assert directory.fetches == []
    assert directory.cache_ages == [300.0]


def test_without_announcements_secrets_are_trusted_only_for_the_bound(
    auth: TenantAuthenticator, directory: Directory
) -> None:
    directory.add("acme", "s3cret")
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    assert directory.cache_ages == [REVOCATION_BOUND_SECONDS]
    assert directory.fetches == [REVOCATION_BOUND_SECONDS]


def test_a_failing_signature_refetches_a_secret_older_than_the_refresh_interval(
    auth: TenantAuthenticator, directory: Directory, clock: Clock
) -> None:
    directory.add("acme", "new")
    directory.cached["acme"] = ["old"]  # changed by hand in Secrets Manager, no announcement
    live(auth, clock)
    directory.age = SECRET_REFRESH_SECONDS + 0.1
    assert run(auth.authenticate("acme", sign("new", MESSAGE), MESSAGE)).id == "acme"
    assert directory.cache_ages == [300.0, SECRET_REFRESH_SECONDS]


def test_a_failing_signature_does_not_refetch_a_fresh_or_unknown_age_secret(
    auth: TenantAuthenticator, directory: Directory, clock: Clock
) -> None:
    directory.add("acme", "new")
    directory.cached["acme"] = ["old"]
    live(auth, clock)
    for age in (SECRET_REFRESH_SECONDS, None):
        directory.age = age
        with pytest.raises(Unauthorized):
            run(auth.authenticate("acme", sign("new", MESSAGE), MESSAGE))
    assert directory.fetches == []
    assert directory.cache_ages == [300.0, 300.0]


def test_a_refetched_secret_that_still_fails_is_refused(
    auth: TenantAuthenticator, directory: Directory, clock: Clock
) -> None:
    directory.add("acme", "s3cret")
    directory.cached["acme"] = ["s3cret"]
    directory.age = 60.0
    live(auth, clock)
    with pytest.raises(Unauthorized):
        run(auth.authenticate("acme", sign("wrong", MESSAGE), MESSAGE))


def test_rows_are_cached_for_their_ttl_while_live_and_the_bound_otherwise(
    auth: TenantAuthenticator, directory: Directory, clock: Clock
) -> None:
    directory.add("acme", "s3cret")
    signature = sign("s3cret", MESSAGE)
    live(auth, clock)
    run(auth.authenticate("acme", signature, MESSAGE))
    clock.now += ROW_TTL_SECONDS - 0.5
    live(auth, clock)
    run(auth.authenticate("acme", signature, MESSAGE))
    assert directory.gets == ["acme"]
    clock.now += 0.5  # exactly the TTL: looked up again
    live(auth, clock)
    run(auth.authenticate("acme", signature, MESSAGE))
    assert directory.gets == ["acme", "acme"]
    # Not live: the row is trusted for the bound only.
    clock.now += REVOCATION_BOUND_SECONDS + 10
    run(auth.authenticate("acme", signature, MESSAGE))
    assert directory.gets == ["acme"] * 3
    clock.now += REVOCATION_BOUND_SECONDS - 0.5
    run(auth.authenticate("acme", signature, MESSAGE))
    assert directory.gets == ["acme"] * 3


def test_an_unknown_tenant_is_cached_as_unknown(auth: TenantAuthenticator, directory: Directory) -> None:
    unknown, found = lookups("unknown"), lookups("found")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            run(auth.authenticate("nobody", sign("x", MESSAGE), MESSAGE))
    assert directory.gets == ["nobody"]
    assert (lookups("unknown"), lookups("found")) == (unknown + 1, found)
    directory.add("acme", "s3cret")
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    assert lookups("found") == found + 1


def test_forget_drops_the_row_and_invalidates_every_secret_name(
    auth: TenantAuthenticator, directory: Directory, store: Store, clock: Clock
) -> None:
    acme = directory.add("acme", "s3cret")
    live(auth, clock)
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    auth.forget("acme")
    assert set(store.invalidated) == webhook_secret_ids(PREFIX, "acme", acme)
    assert "old/acme" in store.invalidated
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    assert directory.gets == ["acme", "acme"]
    store.invalidated.clear()
    auth.forget("never-seen")
    assert set(store.invalidated) == webhook_secret_ids(PREFIX, "never-seen")


def test_forget_all_forgets_every_cached_tenant(
    auth: TenantAuthenticator, directory: Directory, store: Store, clock: Clock
) -> None:
    for name in ("a1", "b2"):
        directory.add(name, "s3cret")
        live(auth, clock)
        run(auth.authenticate(name, sign("s3cret", MESSAGE), MESSAGE))
    auth.forget_all()
    assert {"old/a1", "old/b2"} <= set(store.invalidated)
    for name in ("a1", "b2"):
        run(auth.authenticate(name, sign("s3cret", MESSAGE), MESSAGE))
    assert directory.gets == ["a1", "b2", "a1", "b2"]


def test_a_look_up_that_raced_a_forget_is_answered_but_not_cached(
    auth: TenantAuthenticator, directory: Directory, clock: Clock
) -> None:
    directory.add("acme", "s3cret")
    real_get = directory.get

    def get_while_forgotten(tenant_id: str) -> TenantInfo | None:
        auth.forget(tenant_id)  # an announcement arrives during the read
        return real_get(tenant_id)

    directory.get = get_while_forgotten  # type: ignore[method-assign]
    auth.forget("other")  # an earlier announcement: each one must still count as a change
    live(auth, clock)
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    directory.get = real_get  # type: ignore[method-assign]
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    assert directory.gets == ["acme", "acme"]


def test_look_ups_of_unknown_ids_are_budgeted_but_known_tenants_skip_the_budget(
    auth: TenantAuthenticator, directory: Directory, clock: Clock
) -> None:
    directory.add("acme", "s3cret")
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    refused = lookups("refused")
    for n in range(int(LOOKUP_BURST) - 1):
        with pytest.raises(Unauthorized):
            run(auth.authenticate(f"made-up-{n}", "sha256=00", MESSAGE))
    with pytest.raises(LookupsExhausted):
        run(auth.authenticate("made-up-last", "sha256=00", MESSAGE))
    assert lookups("refused") == refused + 1
    clock.now += ROW_TTL_SECONDS  # acme's row expired: its look-up does not need a token
    assert run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE)).id == "acme"


def test_the_row_cache_is_bounded_by_dropping_the_oldest(
    auth: TenantAuthenticator, directory: Directory, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setattr(tenant_auth, "MAX_ENTRIES", 2)
    assert MAX_ENTRIES == 10_000
    live(auth, clock)
    for name in ("t1", "t2", "t3"):
        directory.add(name, "s3cret")
        run(auth.authenticate(name, sign("s3cret", MESSAGE), MESSAGE))
    live(auth, clock)
    run(auth.authenticate("t3", sign("s3cret", MESSAGE), MESSAGE))
    run(auth.authenticate("t2", sign("s3cret", MESSAGE), MESSAGE))
    run(auth.authenticate("t1", sign("s3cret", MESSAGE), MESSAGE))
    assert directory.gets == ["t1", "t2", "t3", "t1"]
    assert auth._known == {"t1", "t2"}  # the known set is bounded too


def test_token_bucket_refills_at_its_rate_up_to_its_burst(clock: Clock) -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 100  # capped at the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert (LOOKUPS_PER_SECOND, LOOKUP_BURST) == (50.0, 100.0)


def test_a_refreshed_row_moves_to_the_young_end_of_the_bounded_cache(
    auth: TenantAuthenticator, directory: Directory, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setattr(tenant_auth, "MAX_ENTRIES", 2)
    for name in ("t1", "t2", "t3"):
        directory.add(name, "s3cret")
    live(auth, clock)
    run(auth.authenticate("t1", sign("s3cret", MESSAGE), MESSAGE))
    clock.now += 1
    run(auth.authenticate("t2", sign("s3cret", MESSAGE), MESSAGE))
    clock.now += ROW_TTL_SECONDS - 0.5  # t1 expired, t2 not yet
    live(auth, clock)
    run(auth.authenticate("t1", sign("s3cret", MESSAGE), MESSAGE))  # refreshed: now the youngest
    run(auth.authenticate("t3", sign("s3cret", MESSAGE), MESSAGE))  # evicts the oldest: t2, not t1
    run(auth.authenticate("t1", sign("s3cret", MESSAGE), MESSAGE))
    assert directory.gets == ["t1", "t2", "t1", "t3"]
    run(auth.authenticate("t2", sign("s3cret", MESSAGE), MESSAGE))
    assert directory.gets == ["t1", "t2", "t1", "t3", "t2"]


def test_the_change_listener_is_wired_to_this_authenticators_caches(
    clock: Clock, directory: Directory, store: Store
) -> None:
    def connect_kwargs() -> dict[str, Any]:
        return {}

    auth = TenantAuthenticator(
        directory,  # type: ignore[arg-type]
        store,  # type: ignore[arg-type]
        secret_prefix=PREFIX,
        connect_kwargs=connect_kwargs,
    )
    assert auth.listener._connect_kwargs is connect_kwargs
    directory.add("acme", "s3cret")
    live(auth, clock)
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    auth.listener._forget("acme")  # what a tenant's announcement calls
    assert "old/acme" in store.invalidated
    run(auth.authenticate("acme", sign("s3cret", MESSAGE), MESSAGE))
    store.invalidated.clear()
    auth.listener._forget_all()  # what a reconnect calls: anything may have been missed
    assert "old/acme" in store.invalidated
    assert directory.gets == ["acme", "acme"]


def test_a_row_refreshed_while_announcements_lapse_does_not_evict_another(
    auth: TenantAuthenticator, directory: Directory, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setattr(tenant_auth, "MAX_ENTRIES", 2)
    for name in ("t1", "t2"):
        directory.add(name, "s3cret")
    live(auth, clock)
    run(auth.authenticate("t1", sign("s3cret", MESSAGE), MESSAGE))
    clock.now += 50
    live(auth, clock)
    run(auth.authenticate("t2", sign("s3cret", MESSAGE), MESSAGE))
    clock.now += 5  # the listener went quiet: rows are trusted for the bound only
    run(auth.authenticate("t2", sign("s3cret", MESSAGE), MESSAGE))  # t2, the younger, is looked up again
    live(auth, clock)
    run(auth.authenticate("t1", sign("s3cret", MESSAGE), MESSAGE))  # t1 is still cached (55 s < TTL)
    assert directory.gets == ["t1", "t2", "t2"]
