"""The ServiceDesk Plus client connects only to public addresses, checked when it connects.

No test here sends a packet anywhere but loopback: refused destinations fail the check before any
connection, and where a public address has to pass the check, a recording backend stands in for the
network and connects to nothing.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterable

import httpcore
import httpx
import pytest

from app.clients.egress import Resolver, guarded_transport, refusal
from app.clients.errors import PermanentError, TransientError
from app.clients.servicedesk import ServiceDeskClient
from app.db.models import AuthMode
from app.settings import SettingsError
from harness.fake_servicedesk import FakeServiceDesk
from tests.app.settings_env import LOCAL, load_with

PUBLIC = "93.184.216.34"  # a globally routable address; only ever handed to the recording backend


class RecordingBackend(httpcore.NetworkBackend):
    """Stands in for the network: records each connect, connects to nothing."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.connects.append((host, port))
        raise httpcore.ConnectError("recorded, not connected")


class TlsRecordingStream(httpcore.NetworkStream):
    """A real loopback connection that records the TLS server name asked for, then stops there."""

    def __init__(self, inner: httpcore.NetworkStream, names: list[str | None]) -> None:
        self._inner = inner
        self._names = names

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        self._names.append(server_hostname)
        raise httpcore.ConnectError("recorded the TLS server name, no handshake")


class TlsRecordingBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self.server_names: list[str | None] = []
        self._real = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.connects.append((host, port))
        return TlsRecordingStream(self._real.connect_tcp(host, port, timeout), self.server_names)


def _client(base_url: str, transport: httpx.BaseTransport) -> ServiceDeskClient:
    return ServiceDeskClient(
        base_url,
        AuthMode.AUTHTOKEN,
        "credential",
        timeout=2,
        max_attempts=1,
        transport=transport,
    )


def _resolving_to(*addresses: str) -> tuple[list[str], Resolver]:
    """A resolver that answers `addresses` for any name, and the list of names it was asked."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return list(addresses)

    return asked, resolve


REFUSED = [
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("10.0.0.7", "private"),
    ("172.16.4.4", "private"),
    ("192.168.1.10", "private"),
    ("127.0.0.1", "loopback"),  # without SDP_ALLOW_LOOPBACK
    ("0.0.0.0", "unspecified"),
    ("224.0.0.251", "multicast"),
    ("100.64.0.1", "not global"),  # carrier-grade NAT
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fd12:3456::1", "private"),
    ("::ffff:10.0.0.7", "private"),  # IPv4-mapped
    ("::ffff:169.254.169.254", "link-local"),
]


@pytest.mark.parametrize(("address", "kind"), REFUSED, ids=[a for a, _ in REFUSED])
def test_a_name_resolving_to_a_refused_address_is_never_connected(address: str, kind: str) -> None:
    network = RecordingBackend()
    asked, resolver = _resolving_to(address)
    transport = guarded_transport(
        allow_loopback=False, max_response_bytes=1 << 20, resolver=resolver, inner=network
    )
    with (
        pytest.raises(PermanentError, match=rf"refused.*{address}.*\({kind}\)"),
        _client("https://sdp.tenant.example", transport) as sdp,
    ):
        sdp.get_ticket("1001")
    assert asked == ["sdp.tenant.example"]
    assert network.connects == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "https://10.0.0.7:8443/sdp",
        "http://[::1]:8080",
        "http://0.0.0.0:80",
        "https://[::ffff:a9fe:a9fe]",  # 169.254.169.254, IPv4-mapped, in hex
    ],
)
def test_a_literal_refused_address_is_never_connected(url: str) -> None:
    network = RecordingBackend()
    transport = guarded_transport(allow_loopback=False, max_response_bytes=1 << 20, inner=network)
    with pytest.raises(PermanentError, match="refused"), _client(url, transport) as sdp:
        sdp.get_ticket("1001")
    assert network.connects == []


def test_every_resolved_address_is_checked() -> None:
    network = RecordingBackend()
    _, resolver = _resolving_to(PUBLIC, "10.0.0.7")
    transport = guarded_transport(
        allow_loopback=False, max_response_bytes=1 << 20, resolver=resolver, inner=network
    )
    with (
        pytest.raises(PermanentError, match=r"10\.0\.0\.7 \(private\)"),
        _client("https://sdp.tenant.example", transport) as sdp,
    ):
        sdp.get_ticket("1001")
    assert network.connects == []


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup() -> None:
    """DNS rebinding: a name that answers a public address to the check and a private one after."""
    network = RecordingBackend()
    answers = iter([[PUBLIC], ["10.0.0.7"], ["127.0.0.1"]])
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    transport = guarded_transport(
        allow_loopback=False, max_response_bytes=1 << 20, resolver=rebinding, inner=network
    )
    with (
        pytest.raises(TransientError, match="unreachable"),
        _client("https://sdp.rebinding.example", transport) as sdp,
    ):
        sdp.get_ticket("1001")
    assert asked == ["sdp.rebinding.example"]  # resolved once, by the check
    assert network.connects == [(PUBLIC, 443)]  # the checked address, never the name


def test_tls_and_host_keep_the_name_while_the_socket_uses_the_checked_address(
    fake_servicedesk: FakeServiceDesk,
) -> None:
    instance = f"egress-{uuid.uuid4().hex[:8]}"
    fake_servicedesk.add_instance(instance, "authtoken", "credential")
    fake_servicedesk.add_ticket(instance, "1001", "VPN down")
    name = "sdp.pinned.example"
    _, resolver = _resolving_to("127.0.0.1")
    network = TlsRecordingBackend()
    transport = guarded_transport(
        allow_loopback=True, max_response_bytes=1 << 20, resolver=resolver, inner=network
    )
    with pytest.raises(TransientError), _client(f"https://{name}:{fake_servicedesk.port}", transport) as sdp:
        sdp.get_ticket("1001")
    assert network.connects == [("127.0.0.1", fake_servicedesk.port)]
    assert network.server_names == [name]  # SNI (and the certificate check) use the name

    transport = guarded_transport(allow_loopback=True, max_response_bytes=1 << 20, resolver=resolver)
    with _client(f"http://{name}:{fake_servicedesk.port}/{instance}", transport) as sdp:
        assert sdp.get_ticket("1001").subject == "VPN down"
    assert fake_servicedesk.requests[-1]["headers"]["Host"] == f"{name}:{fake_servicedesk.port}"


def test_loopback_only_with_the_flag(fake_servicedesk: FakeServiceDesk) -> None:
    instance = f"egress-{uuid.uuid4().hex[:8]}"
    fake_servicedesk.add_instance(instance, "authtoken", "credential")
    fake_servicedesk.add_ticket(instance, "1001", "VPN down")
    url = fake_servicedesk.base_url(instance)  # http://127.0.0.1:<port>/<instance>

    refused = ServiceDeskClient(url, AuthMode.AUTHTOKEN, "credential", max_attempts=1)
    with pytest.raises(PermanentError, match=r"127\.0\.0\.1 \(loopback\)"), refused:
        refused.get_ticket("1001")
    assert not [r for r in fake_servicedesk.requests if r["path"].startswith(f"/{instance}/")]

    allowed = ServiceDeskClient(url, AuthMode.AUTHTOKEN, "credential", max_attempts=1, allow_loopback=True)
    with allowed:
        assert allowed.get_ticket("1001").subject == "VPN down"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://sdp.example/", "sdp.example/api"])
def test_other_schemes_fail_permanently(url: str) -> None:
    with pytest.raises(PermanentError, match="must be http"):
        ServiceDeskClient(url, AuthMode.AUTHTOKEN, "credential")


def test_refusal_allows_public_addresses() -> None:
    import ipaddress

    for address in (PUBLIC, "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert refusal(ipaddress.ip_address(address), allow_loopback=False) is None
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    assert refusal(ipaddress.ip_address("10.0.0.1"), allow_loopback=True) == "private"


@pytest.mark.parametrize("env", ["local", "test"])
def test_the_loopback_flag_is_accepted_for_local_runs(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    settings = load_with(monkeypatch, {**LOCAL, "APP_ENV": env, "SDP_ALLOW_LOOPBACK": "true"})
    assert settings.sdp_allow_loopback


def test_the_loopback_flag_is_refused_when_deployed(monkeypatch: pytest.MonkeyPatch) -> None:
    production = {
        "APP_ENV": "production",
        "DATABASE_URL": "postgresql://app:a-long-database-password@db/x?sslmode=verify-full&sslrootcert=/etc/rds.pem",
        "REDIS_URL": "rediss://:a-long-redis-password-1@r:6379/0",
        "LLM_API_KEY": "sk-production-0123456789abcdef",
        "SDP_ALLOW_LOOPBACK": "true",
    }
    with pytest.raises(SettingsError, match="SDP_ALLOW_LOOPBACK must be false outside local/test"):
        load_with(monkeypatch, production)
    assert not load_with(monkeypatch, {**production, "SDP_ALLOW_LOOPBACK": "false"}).sdp_allow_loopback
