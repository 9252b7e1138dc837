"""Where the worker may connect on a tenant's behalf: public addresses only, checked at connect time.

A tenant's ServiceDesk Plus URL is data typed by a tenant's administrator, and the worker sends the
tenant's credential there. Pointed at 169.254.169.254 (cloud metadata), a 10.x service or the worker's
own loopback, it would make the worker a proxy into the private network. The CLI refuses literal private
addresses when a tenant is added, but a name can resolve anywhere, and differently later. So the check
is made where the connection is: the host is resolved once, *every* address it resolves to must be
public, and the socket connects to one of those checked addresses, never to a name resolved again
(DNS rebinding cannot slip a private address in between). TLS is unaffected: httpcore takes the SNI
name and verifies the certificate against the URL's host, not the address, and httpx sets `Host` from
the URL too.

Loopback is allowed only with `SDP_ALLOW_LOOPBACK=true` (local runs and tests, whose fake ServiceDesk
Plus listens on 127.0.0.1; refused by the settings outside local/test). Refusals raise
`EgressRefused`, which the client reports as a permanent failure: retrying cannot change the address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

import httpcore
import httpx

from app.clients.limits import LimitedTransport, clip

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class EgressRefused(Exception):
    """The destination resolves to an address the worker must not connect to."""


def refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why `address` is refused, or None when the worker may connect to it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    for kind, hit in (
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if hit:
            return kind
    # Whatever else is not globally routable (shared 100.64/10, documentation and benchmark ranges...).
    return None if address.is_global else "not global"


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order, without duplicates. A literal
    address comes back as itself, without a lookup."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse(address: str) -> IPAddress:
    return ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0: the zone is not the address


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, refusing non-public destinations and connecting to checked ones."""

    def __init__(
        self,
        *,
        allow_loopback: bool,
        resolver: Resolver = resolve,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._allow_loopback = allow_loopback
        self._resolve = resolver
        self._inner = inner or httpcore.SyncBackend()

    def checked_addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host`, every one of them allowed; EgressRefused otherwise."""
        try:
            addresses = self._resolve(host, port)
        except (OSError, UnicodeError) as error:
            # Unresolvable now (DNS down, no such name): a connect error, as httpx would report it.
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
        refused = []
        for address in addresses:
            try:
                why = refusal(_parse(address), allow_loopback=self._allow_loopback)
            except ValueError:
                why = "not an IP address"
            if why is not None:
                refused.append(f"{address} ({why})")
        if refused:
            raise EgressRefused(f"{host} resolves to a refused address: {', '.join(refused)}")
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in self.checked_addresses(host, port):
            try:
                # The checked address itself: connecting to `host` would resolve it a second time.
                return self._inner.connect_tcp(address, port, clip(timeout), local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error  # try the next address, as a resolver-ordered connect would
        assert failure is not None  # checked_addresses never returns an empty list
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise EgressRefused("unix sockets are not a ServiceDesk Plus destination")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def guarded_transport(
    *,
    allow_loopback: bool,
    max_response_bytes: int,
    resolver: Resolver = resolve,
    inner: httpcore.NetworkBackend | None = None,
) -> httpx.BaseTransport:
    """The ServiceDesk Plus client's transport: egress guard, deadlines, a response cap, and no
    compressed bodies (a tenant's server could otherwise send a gzip bomb)."""
    return LimitedTransport(
        max_response_bytes=max_response_bytes,
        allow_compression=False,
        network_backend=GuardedBackend(allow_loopback=allow_loopback, resolver=resolver, inner=inner),
    )
