"""Guarded clients connect to the very address the SSRF guard checked (DNS rebinding)."""

from __future__ import annotations

import httpx
import pytest

from atcore.errors import UnsafeAddress
from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from tests.atcore.identity.support import Internet, LocalServer, Rebinding, reply


async def test_rebinding_to_loopback_never_reaches_it(server: LocalServer) -> None:
    """Public first, loopback afterwards: the client connects to the public address it checked
    (unreachable here) and never asks again, so the loopback server sees nothing."""
    server.route("*", "/secret", reply(200, "internal"))
    dns = Rebinding(["93.184.216.34"], ["127.0.0.1"])
    real_loopback_only = Internet(server.port, reachable={"127.0.0.1"})
    async with guarded_client(AddressGuard(lookup=dns), network=real_loopback_only) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://rebind.example.com:{server.port}/secret")
    assert real_loopback_only.connects == [("93.184.216.34", server.port)]
    assert dns.calls == 1
    assert server.requests == []


async def test_every_connection_is_checked_again(server: LocalServer) -> None:
    server.route("*", "/x", reply(200, "ok"))  # `connection: close`: one connection per request
    dns = Rebinding(["93.184.216.34"], ["127.0.0.1"])
    async with guarded_client(AddressGuard(lookup=dns), network=server.network) as client:
        assert (await client.get("https://pds.example.com/x")).text == "ok"
        with pytest.raises(UnsafeAddress, match="127.0.0.1"):
            await client.get("https://pds.example.com/x")
    assert server.network.connects == [("93.184.216.34", 443)]
    assert len(server.requests) == 1


async def test_host_header_and_tls_name_keep_the_original_name(server: LocalServer) -> None:
    server.route("pds.example.com", "/x", reply(200, "ok"))
    guard = AddressGuard(lookup=Rebinding(["2606:4700::1"], []))
    async with guarded_client(guard, network=server.network) as client:
        assert (await client.get("https://pds.example.com/x")).status_code == 200
    assert server.network.connects == [("2606:4700::1", 443)]
    assert server.network.server_names == ["pds.example.com"]  # SNI and certificate check
    assert server.requests == [("GET", "pds.example.com", "/x", b"")]


async def test_next_checked_address_when_one_does_not_answer(server: LocalServer) -> None:
    server.route("*", "/x", reply(200, "ok"))
    internet = Internet(server.port, reachable={"93.184.216.35"})
    guard = AddressGuard(lookup=Rebinding(["93.184.216.34", "93.184.216.35"], []))
    async with guarded_client(guard, network=internet) as client:
        assert (await client.get("https://pds.example.com/x")).text == "ok"
    assert internet.connects == [("93.184.216.34", 443), ("93.184.216.35", 443)]


async def test_private_answers_refused_before_any_connection(server: LocalServer) -> None:
    for answer in (["127.0.0.1"], ["93.184.216.34", "10.0.0.1"], ["::ffff:127.0.0.1"]):
        guard = AddressGuard(lookup=Rebinding(answer, answer))
        async with guarded_client(guard, network=server.network) as client:
            with pytest.raises(UnsafeAddress):
                await client.get("https://pds.example.com/x")
    async with guarded_client(AddressGuard(), network=server.network) as client:
        with pytest.raises(UnsafeAddress, match="IP address"):
            await client.get(f"http://127.0.0.1:{server.port}/x")
    assert server.network.connects == [] and server.requests == []


async def test_dev_mode_reaches_loopback_for_real(server: LocalServer) -> None:
    server.route("*", "/x", reply(200, "ok"))
    async with guarded_client(AddressGuard(allow_private=True)) as client:
        for host in ("localhost", "127.0.0.1"):
            response = await client.get(f"http://{host}:{server.port}/x")
            assert response.text == "ok"
    assert [r[1] for r in server.requests] == ["localhost", "127.0.0.1"]


async def test_environment_proxies_are_not_used(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.route("*", "/x", reply(200, "ok"))
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.0.0.1:3128")
    async with guarded_client(AddressGuard(allow_private=True)) as client:
        assert (await client.get(f"http://localhost:{server.port}/x")).text == "ok"
