"""Adding upstream hosts: requestCrawl and the admin's additions (indigo-relay-HACKING.md).

A hostname is `name[:port]` without scheme or path (a URL's host part is accepted, as the
reference relay does). Outside dev mode the name must be a public DNS name whose addresses are
all public, on the default port; dev mode also admits `localhost:<port>` and loopback, over
plain http. Before a new host is added it must answer `describeServer` like a PDS, and must not
be a relay (indigo marks its responses with `atproto-relay` in the Server header). Banned hosts
and hosts under banned domains are refused; new hosts per day are capped unless an admin asks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from atcore.errors import IdentityError, InvalidSyntax, UnsafeAddress
from atcore.identity.netguard import parse_ip_literal
from atcore.syntax.integer import parse_integer
from atcore.xrpc.client import XrpcClient, XrpcClientError
from atcore.xrpc.errors import InvalidRequest, XrpcError
from relay.config import TRUSTED_ACCOUNT_LIMIT, RelayConfig
from relay.crawler import ACTIVE, BANNED, Crawler, host_url
from relay.db import Database, hosts
from relay.db.hosts import HostRow

DESCRIBE = "com.atproto.server.describeServer"
RELAY_MARK = "atproto-relay"
MAX_DESCRIBE_BYTES = 64 * 1024
CHECK_TIMEOUT = 10.0
_LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")


def parse_hostname(value: str, dev_mode: bool) -> str:
    """The normal form `name[:port]` of a requested host; InvalidRequest when unacceptable."""
    text = value.strip().lower()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme not in ("http", "https"):
            raise InvalidRequest(f"not a hostname: {value[:100]!r}")
    text = text.split("/", 1)[0]
    name, port = text, ""
    if not text.endswith("]") and ":" in text:
        name, port = text.rsplit(":", 1)
        try:
            port = str(parse_integer(port, 1, 65535))
        except InvalidSyntax:
            raise InvalidRequest(f"bad port in hostname {value[:100]!r}") from None
    local = name in _LOCAL_NAMES
    if local:
        if not dev_mode:
            raise InvalidRequest("local hosts are only crawled in dev mode")
        if not port:
            raise InvalidRequest("a local host needs an explicit port")
        return f"{name}:{port}"
    if port and port != "443":
        raise InvalidRequest("hosts are crawled on the default https port")
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_is_label(label) for label in labels):
        raise InvalidRequest(f"not a hostname: {value[:100]!r}")
    if parse_ip_literal(name) is not None:
        raise InvalidRequest("hosts are named by DNS, not by IP address")
    return name


def _is_label(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
    )


def is_banned(hostname: str, banned: list[str]) -> bool:
    return any(hosts.is_under(hostname, domain) for domain in banned)


@dataclass
class HostAdmission:
    """requestCrawl's policy and checks, over the crawler that consumes admitted hosts."""

    config: RelayConfig
    db: Database
    crawler: Crawler
    http: httpx.AsyncClient  # a guarded client (atcore.identity.pinned): the host is user input

    async def request_crawl(self, requested: str, *, admin: bool = False) -> HostRow:
        hostname = parse_hostname(requested, self.config.dev_mode)
        if is_banned(hostname, await self.db.read(hosts.banned_domains)):
            raise InvalidRequest(f"{hostname} is banned", "HostBanned")
        host = await self.db.read(hosts.get, hostname)
        if host is not None and host.status == BANNED:
            raise InvalidRequest(f"{hostname} is banned", "HostBanned")
        if host is None and not admin:
            day_ago = int((time.time() - 86400) * 1000)
            if await self.db.read(hosts.created_since, day_ago) >= self.config.new_hosts_per_day:
                raise XrpcError(429, "RateLimitExceeded", "too many new hosts today; try later")
        if self.crawler.live_status(hostname) is None:
            await self.check_host(hostname)
        if host is None:
            trusted = self.config.is_trusted(hostname)
            limit = TRUSTED_ACCOUNT_LIMIT if trusted else self.config.default_account_limit
            host = await self.crawler.writer.run(hosts.create, hostname, ACTIVE, trusted, limit)
        elif host.status != ACTIVE:
            await self.crawler.writer.run(hosts.set_status, host.id, ACTIVE)
            host = await self.db.read(hosts.get, hostname)
            assert host is not None
        self.crawler.ensure(host)
        return host

    async def check_host(self, hostname: str) -> None:
        """The host must be reachable, public (outside dev mode), a PDS, and not a relay."""
        host = XrpcClient(
            host_url(hostname), self.http, max_response=MAX_DESCRIBE_BYTES, timeout=CHECK_TIMEOUT
        )
        try:
            answer = await host.query_answer(DESCRIBE, headers={"accept-encoding": "identity"})
        except UnsafeAddress as exc:
            raise InvalidRequest(f"refusing to crawl {hostname}: {exc}") from None
        except IdentityError as exc:
            raise InvalidRequest(f"{hostname} did not answer describeServer: {exc!r}") from None
        except XrpcClientError as exc:
            _refuse_relay(hostname, exc.headers)
            if exc.status == 0 or exc.error == "InvalidResponse":
                raise InvalidRequest(f"{hostname} did not answer describeServer: {exc}") from None
            raise InvalidRequest(
                f"{hostname} answered describeServer with HTTP {exc.status}"
            ) from None
        _refuse_relay(hostname, answer.headers)
        try:
            described = json.loads(answer.body)
        except ValueError:
            described = None
        if not isinstance(described, dict) or not isinstance(described.get("did"), str):
            raise InvalidRequest(f"{hostname} did not describe itself as a PDS")


def _refuse_relay(hostname: str, headers: Mapping[str, str]) -> None:
    if RELAY_MARK in headers.get("server", "").lower():
        raise InvalidRequest(f"{hostname} is a relay; relays are not crawled")
