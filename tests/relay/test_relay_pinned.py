"""requestCrawl hosts and their firehose are reached on the address the guard checked."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

import pytest

from atcore.errors import UnsafeAddress
from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.stream import subscribe
from relay.hosts import HostAdmission
from tests.atcore.identity.support import Internet, Rebinding, fixed_lookup
from tests.relay.conftest import Relay, Upstream

pytestmark = pytest.mark.integration


def production_admission(relay: Relay, guard: AddressGuard, internet: Internet) -> HostAdmission:
    config = dataclasses.replace(relay.ctx.config, dev_mode=False)
    client = guarded_client(guard, network=internet)
    return HostAdmission(config, relay.ctx.db, relay.ctx.crawler, client)


async def test_describe_server_check_uses_the_checked_address(
    relay: Relay, upstream: Upstream
) -> None:
    port = urlsplit(upstream.url).port
    assert port is not None
    # The "public internet": the upstream fake PDS answers for 93.184.216.34:443.
    internet = Internet(port, reachable={"93.184.216.34"})
    public = production_admission(
        relay, AddressGuard(lookup=fixed_lookup("93.184.216.34")), internet
    )
    await public.check_host("pds.example.com")
    await public.http.aclose()
    assert internet.connects == [("93.184.216.34", 443)]
    assert internet.server_names == ["pds.example.com"]  # TLS to the name, not the address


async def test_rebinding_host_never_reaches_loopback(relay: Relay, upstream: Upstream) -> None:
    port = urlsplit(upstream.url).port
    assert port is not None
    dns = Rebinding(["93.184.216.34"], ["127.0.0.1"])
    internet = Internet(port, reachable={"127.0.0.1"})
    admission = production_admission(relay, AddressGuard(lookup=dns), internet)
    with pytest.raises(InvalidRequest, match="did not answer"):
        await admission.check_host("pds.example.com")
    with pytest.raises(InvalidRequest, match="non-public"):
        await admission.check_host("pds.example.com")  # the next answer: refused outright
    await admission.http.aclose()
    assert internet.connects == [("93.184.216.34", 443)]  # never a connection to loopback


async def test_firehose_connects_to_the_guarded_address(upstream: Upstream) -> None:
    """The crawler's websocket goes where the guard says, with the host's own name."""
    port = urlsplit(upstream.url).port
    account = await upstream.account("alice.test")
    await upstream.pds.emit(account.genesis)
    await upstream.pds.close_streams()
    url = f"http://pds.nowhere.test:{port}/xrpc/com.atproto.sync.subscribeRepos"
    dev = AddressGuard(allow_private=True, lookup=fixed_lookup("127.0.0.1"))
    events = [event async for event in subscribe(url, {"cursor": 0}, guard=dev)]
    assert [getattr(e, "repo", None) for e in events] == [account.did]
    with pytest.raises(UnsafeAddress):
        async for _ in subscribe(
            url, {"cursor": 0}, guard=AddressGuard(lookup=fixed_lookup("127.0.0.1"))
        ):
            pass
