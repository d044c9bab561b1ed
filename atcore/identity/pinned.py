"""HTTP connections pinned to the addresses the SSRF guard checked (DESIGN.md "Verify, then
trust"; the DNS-rebinding half of the SSRF guard in atcore.identity.netguard).

Checking a host's addresses and then letting the HTTP client resolve the name again is not a
guard: the second DNS answer may differ, and a name that answered with a public address a
moment ago can answer 127.0.0.1 now. Here the client's network layer itself asks the guard,
once per connection, and opens the TCP connection to one of exactly the addresses it approved.
Everything above the socket still uses the URL's name: the Host header, and for https the TLS
SNI and certificate check (httpcore takes `server_hostname` from the request's origin, not from
the address connected to).

`guarded_client` is the one way services fetch a URL a user can aim (proxy targets, did:web
documents, handle well-knowns, requestCrawl hosts, a repo's PDS, feed generators); clients for
operator-configured services (the PLC directory, the appview) need no guard.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Final

import anyio
import httpcore
import httpx

from atcore.identity.netguard import AddressGuard

DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0)
DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class PinnedNetwork(httpcore.AsyncNetworkBackend):
    """A network backend that resolves through `guard` and connects to the checked addresses
    (in the resolver's order, the next one when a connection attempt fails)."""

    def __init__(self, guard: AddressGuard, network: httpcore.AsyncNetworkBackend) -> None:
        self._guard = guard
        self._network = network

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._guard.addresses(host)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host[:100]} timed out") from None
        for address in addresses[:-1]:
            try:
                return await self._network.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return await self._network.connect_tcp(
            addresses[-1], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through the guard")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over a connection pool whose network is a PinnedNetwork.

    httpx 0.28 has no parameter for the pool's network backend (encode/httpx#3749 proposes
    one), so the pool it builds is replaced by one built the same way with ours.
    """

    def __init__(
        self,
        guard: AddressGuard,
        *,
        network: httpcore.AsyncNetworkBackend | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedNetwork(guard, network or httpcore.AnyIOBackend()),
        )


def guarded_client(
    guard: AddressGuard,
    *,
    network: httpcore.AsyncNetworkBackend | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
) -> httpx.AsyncClient:
    """An httpx client for user-aimed URLs: every connection goes to an address `guard`
    approved, redirects are not followed (callers check each hop themselves), no proxies
    from the environment. `network` is the socket layer under the guard (tests give one)."""
    return httpx.AsyncClient(
        transport=PinnedTransport(guard, network=network),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
