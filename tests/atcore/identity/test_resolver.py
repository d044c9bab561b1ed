"""IdentityResolver against real HTTP servers on 127.0.0.1 (see conftest.LocalNet)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from atcore.errors import (
    DidDeactivated,
    DidNotFound,
    HandleNotFound,
    InvalidDidDocument,
    InvalidSyntax,
    ResolutionFailed,
    UnsafeAddress,
    UnsupportedDid,
)
from atcore.identity.netguard import AddressGuard, HostLookup
from atcore.identity.resolver import IdentityResolver
from atcore.syntax.did import Did
from tests.atcore.identity.support import (
    MULTIKEY_K256,
    OTHER_DID,
    PLC_DID,
    WEB_DID,
    Handler,
    LocalServer,
    fixed_lookup,
    never_answer,
    plc_doc,
    reply,
    txt_records,
)


def no_txt() -> Callable[[str], Awaitable[list[str]]]:
    return fixed_lookup()


def make_resolver(
    server: LocalServer,
    http: httpx.AsyncClient,
    *,
    host_lookup: HostLookup | None = None,
    **options: Any,
) -> IdentityResolver:
    """A resolver whose PLC requests go through `http` and whose guarded fetches resolve names
    with `host_lookup`, all reaching the local server."""
    options.setdefault("allow_private", True)
    options.setdefault("txt_lookup", no_txt())
    lookup = host_lookup or fixed_lookup("127.0.0.1")
    guarded = server.guarded(AddressGuard(options["allow_private"], lookup))
    return IdentityResolver(f"http://plc.test:{server.port}", http, guarded_http=guarded, **options)


# --- DID resolution ---


async def test_resolve_plc_did(server: LocalServer, http: httpx.AsyncClient) -> None:
    server.route("plc.test", f"/{PLC_DID}", reply(200, plc_doc()))
    doc = await make_resolver(server, http).resolve_did(PLC_DID)
    assert doc.handle == "alice.test" and doc.pds_endpoint is not None
    assert server.requests == [("GET", "plc.test", f"/{PLC_DID}", b"")]


@pytest.mark.parametrize(
    ("status", "error"), [(404, DidNotFound), (410, DidDeactivated), (500, ResolutionFailed)]
)
async def test_plc_errors(
    server: LocalServer, http: httpx.AsyncClient, status: int, error: type[Exception]
) -> None:
    server.route("plc.test", f"/{PLC_DID}", reply(status, {"message": "nope"}))
    with pytest.raises(error):
        await make_resolver(server, http).resolve_did(PLC_DID)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not json", InvalidDidDocument),
        (plc_doc(did=OTHER_DID), InvalidDidDocument),  # a document for someone else
    ],
)
async def test_bad_documents(
    server: LocalServer, http: httpx.AsyncClient, body: object, error: type[Exception]
) -> None:
    server.route("plc.test", f"/{PLC_DID}", reply(200, body))
    with pytest.raises(error):
        await make_resolver(server, http).resolve_did(PLC_DID)


async def test_resolve_web_did(server: LocalServer, http: httpx.AsyncClient) -> None:
    server.route("alice.test", "/.well-known/did.json", reply(200, plc_doc(did=WEB_DID)))
    doc = await make_resolver(server, http).resolve_did(WEB_DID)
    assert doc.did == WEB_DID and doc.handle == "alice.test"


async def test_web_did_localhost_port_only_in_dev_mode(server: LocalServer) -> None:
    did = Did(f"did:web:localhost%3A{server.port}")
    server.route("localhost", "/.well-known/did.json", reply(200, plc_doc(did=did)))
    # Really resolves localhost and connects to it, through the guard's own client.
    async with IdentityResolver("http://127.0.0.1:1", allow_private=True) as dev:
        assert (await dev.resolve_did(did)).did == did
    async with IdentityResolver("http://127.0.0.1:1") as prod:
        with pytest.raises(UnsupportedDid, match="only allowed for localhost"):
            await prod.resolve_did(did)
        with pytest.raises(UnsupportedDid):
            await prod.resolve_did("did:web:localhost")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("did", "error"),
    [
        ("did:web:example.com:user:alice", UnsupportedDid),
        ("did:web:example.com%2Fpath", UnsupportedDid),
        ("did:web:blah.arpa", UnsupportedDid),
        ("did:web:laptop.local", UnsupportedDid),
        ("did:web:127.0.0.1", UnsupportedDid),
        ("did:key:" + MULTIKEY_K256, UnsupportedDid),
        ("did:plc:UPPERCASEUPPERCASEUPPERCA", InvalidSyntax),
        ("did:plc:short", InvalidSyntax),
        ("not a did", InvalidSyntax),
    ],
)
async def test_unresolvable_dids(
    server: LocalServer, http: httpx.AsyncClient, did: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await make_resolver(server, http, allow_private=False).resolve_did(did)
    assert server.requests == []


async def test_web_did_guarded_in_production(server: LocalServer, http: httpx.AsyncClient) -> None:
    did = Did("did:web:alice.example.com")
    server.route("alice.example.com", "/.well-known/did.json", reply(200, plc_doc(did=did)))
    private = make_resolver(server, http, allow_private=False, host_lookup=fixed_lookup("10.0.0.7"))
    with pytest.raises(UnsafeAddress):
        await private.resolve_did(did)
    assert server.requests == []
    public = make_resolver(server, http, allow_private=False, host_lookup=fixed_lookup("8.8.8.8"))
    assert (await public.resolve_did(did)).did == did


async def test_cache_ttl_invalidate_refresh(server: LocalServer, http: httpx.AsyncClient) -> None:
    now = [100.0]
    server.route("plc.test", f"/{PLC_DID}", reply(200, plc_doc()))
    resolver = make_resolver(server, http, cache_ttl=60.0, clock=lambda: now[0])
    assert resolver.cached(PLC_DID) is None
    doc = await resolver.resolve_did(PLC_DID)
    await resolver.resolve_did(PLC_DID)
    assert len(server.requests) == 1
    now[0] += 59.9
    assert resolver.cached(PLC_DID) == doc  # never a lookup
    await resolver.resolve_did(PLC_DID)
    assert len(server.requests) == 1
    now[0] += 0.1
    assert resolver.cached(PLC_DID) is None
    await resolver.resolve_did(PLC_DID)
    assert len(server.requests) == 2
    resolver.invalidate(PLC_DID)
    await resolver.resolve_did(PLC_DID)
    assert len(server.requests) == 3
    server.route("plc.test", f"/{PLC_DID}", reply(200, plc_doc(handle="bob.test")))
    assert (await resolver.resolve_did(PLC_DID)).handle == "alice.test"  # still cached
    assert (await resolver.refresh(PLC_DID)).handle == "bob.test"
    assert len(server.requests) == 4


async def test_failures_are_not_cached(server: LocalServer, http: httpx.AsyncClient) -> None:
    resolver = make_resolver(server, http)
    with pytest.raises(DidNotFound):
        await resolver.resolve_did(PLC_DID)
    server.route("plc.test", f"/{PLC_DID}", reply(200, plc_doc()))
    assert (await resolver.resolve_did(PLC_DID)).did == PLC_DID


async def test_streamed_body_over_limit_is_refused(
    server: LocalServer, http: httpx.AsyncClient
) -> None:
    total = 10 * 1024 * 1024
    server.route("plc.test", f"/{PLC_DID}", server.stream_forever(total))
    resolver = make_resolver(server, http, max_doc_bytes=64 * 1024)
    with pytest.raises(ResolutionFailed, match="exceeds 65536 bytes"):
        await resolver.resolve_did(PLC_DID)
    await asyncio.sleep(0.2)  # let the server notice the closed connection
    assert server.streamed < total


async def test_declared_length_over_limit_is_refused(
    server: LocalServer, http: httpx.AsyncClient
) -> None:
    server.route("plc.test", f"/{PLC_DID}", reply(200, b"x" * 70_000))
    resolver = make_resolver(server, http, max_doc_bytes=64 * 1024)
    with pytest.raises(ResolutionFailed, match="body is 70000 bytes"):
        await resolver.resolve_did(PLC_DID)


async def test_compressed_body_is_refused(server: LocalServer, http: httpx.AsyncClient) -> None:
    server.route("plc.test", f"/{PLC_DID}", reply(200, b"\x1f\x8b", {"content-encoding": "gzip"}))
    with pytest.raises(ResolutionFailed, match="gzip"):
        await make_resolver(server, http).resolve_did(PLC_DID)


async def test_silent_server_times_out(server: LocalServer, http: httpx.AsyncClient) -> None:
    server.route("plc.test", f"/{PLC_DID}", never_answer)
    resolver = make_resolver(server, http, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(ResolutionFailed, match="within 0.3s"):
        await resolver.resolve_did(PLC_DID)
    assert time.monotonic() - start < 2.0


# --- handles ---


async def test_handle_via_dns(server: LocalServer, http: httpx.AsyncClient) -> None:
    lookup = txt_records({"_atproto.alice.test": [f"did={PLC_DID}"]})
    resolver = make_resolver(server, http, txt_lookup=lookup)
    assert await resolver.resolve_handle("Alice.Test") == PLC_DID


async def test_handle_via_well_known(server: LocalServer, http: httpx.AsyncClient) -> None:
    server.route("alice.test", "/.well-known/atproto-did", reply(200, f"\n {PLC_DID}\r\n"))
    resolver = make_resolver(server, http)
    assert await resolver.resolve_handle("alice.test") == PLC_DID
    assert server.requests == [("GET", "alice.test", "/.well-known/atproto-did", b"")]


@pytest.mark.parametrize(
    "handler",
    [
        reply(404, PLC_DID),
        reply(200, "did=" + PLC_DID),
        reply(200, "<html>did:plc:ewvi7nxzyoun6zhxrhs64oiz</html>"),
        reply(200, b"\xff" + PLC_DID.encode()),
        reply(200, PLC_DID * 200),  # over the well-known size limit
    ],
)
async def test_bad_well_known_answers(
    server: LocalServer, http: httpx.AsyncClient, handler: Handler
) -> None:
    server.route("alice.test", "/.well-known/atproto-did", handler)
    assert await make_resolver(server, http).resolve_handle("alice.test") is None


async def test_dns_preferred_over_conflicting_well_known(
    server: LocalServer, http: httpx.AsyncClient
) -> None:
    server.route("alice.test", "/.well-known/atproto-did", reply(200, OTHER_DID))
    lookup = txt_records({"_atproto.alice.test": [f"did={PLC_DID}"]})
    resolver = make_resolver(server, http, txt_lookup=lookup)
    assert await resolver.resolve_handle("alice.test") == PLC_DID


async def test_well_known_used_when_dns_fails(server: LocalServer, http: httpx.AsyncClient) -> None:
    server.route("alice.test", "/.well-known/atproto-did", reply(200, PLC_DID))

    async def broken(name: str) -> list[str]:
        raise ResolutionFailed("SERVFAIL")

    async def hanging(name: str) -> list[str]:
        await asyncio.sleep(3600)
        return []

    ambiguous = txt_records({"_atproto.alice.test": [f"did={PLC_DID}", f"did={OTHER_DID}"]})
    for lookup in (broken, hanging, ambiguous):
        resolver = make_resolver(server, http, txt_lookup=lookup, timeout=0.3)
        assert await resolver.resolve_handle("alice.test") == PLC_DID


async def test_well_known_redirects(server: LocalServer, http: httpx.AsyncClient) -> None:
    server.route(
        "alice.test", "/.well-known/atproto-did", reply(302, "", {"location": "/elsewhere"})
    )
    server.route("alice.test", "/elsewhere", reply(200, PLC_DID))
    assert await make_resolver(server, http).resolve_handle("alice.test") == PLC_DID
    loop = reply(302, "", {"location": "/.well-known/atproto-did"})
    server.route("bob.test", "/.well-known/atproto-did", loop)
    assert await make_resolver(server, http).resolve_handle("bob.test") is None
    assert len([r for r in server.requests if r[1] == "bob.test"]) == 4  # 1 + 3 redirects


async def test_handle_guard_in_production(server: LocalServer, http: httpx.AsyncClient) -> None:
    handle = "alice.example.com"
    server.route(handle, "/.well-known/atproto-did", reply(200, PLC_DID))

    def prod(*addresses: str) -> IdentityResolver:
        return make_resolver(
            server, http, allow_private=False, host_lookup=fixed_lookup(*addresses)
        )

    for addresses in [("127.0.0.1",), ("::1",), ("8.8.8.8", "192.168.0.2")]:
        assert await prod(*addresses).resolve_handle(handle) is None
    assert server.requests == []
    assert await prod("8.8.8.8").resolve_handle(handle) == PLC_DID
    # A public host may not bounce the fetch to an internal one, nor down to plain http.
    hosts = {handle: ["8.8.8.8"], "internal.example.com": ["10.1.1.1"]}

    async def lookup(host: str) -> list[str]:
        return hosts[host]

    server.route("internal.example.com", "/x", reply(200, PLC_DID))
    server.route(handle, "/x", reply(200, PLC_DID))
    for location in ["https://internal.example.com/x", "http://alice.example.com/x"]:
        server.route(handle, "/.well-known/atproto-did", reply(302, "", {"location": location}))
        resolver = make_resolver(server, http, allow_private=False, host_lookup=lookup)
        assert await resolver.resolve_handle(handle) is None
    assert [r for r in server.requests if r[2] == "/x"] == []


@pytest.mark.parametrize(
    "handle", ["laptop.local", "blah.arpa", "x.onion", "alice.test", "handle.invalid"]
)
async def test_reserved_tlds_never_resolve(
    server: LocalServer, http: httpx.AsyncClient, handle: str
) -> None:
    server.route("*", "/.well-known/atproto-did", reply(200, PLC_DID))
    lookup = txt_records({f"_atproto.{handle}": [f"did={PLC_DID}"]})
    resolver = make_resolver(server, http, allow_private=False, txt_lookup=lookup)
    assert await resolver.resolve_handle(handle) is None
    assert server.requests == []


async def test_invalid_handle_syntax(server: LocalServer, http: httpx.AsyncClient) -> None:
    with pytest.raises(InvalidSyntax):
        await make_resolver(server, http).resolve_handle("not_a_handle")


# --- both directions ---


def alice_both_ways(server: LocalServer, http: httpx.AsyncClient, spelled: str) -> IdentityResolver:
    """A resolver for PLC_DID, whose document claims alice.test (spelled so) and whose
    well-known file confirms it."""
    server.route("plc.test", f"/{PLC_DID}", reply(200, plc_doc(handle=spelled)))
    server.route("alice.test", "/.well-known/atproto-did", reply(200, PLC_DID))
    return make_resolver(server, http)


async def test_identity_verified_both_ways(server: LocalServer, http: httpx.AsyncClient) -> None:
    resolver = alice_both_ways(server, http, "alice.test")
    for query in (PLC_DID, "alice.test", "ALICE.test"):
        identity = await resolver.resolve_identity(query)
        assert (identity.did, identity.handle) == (PLC_DID, "alice.test")
        assert identity.display_handle == "alice.test"


async def test_document_claims_a_handle_that_points_elsewhere(
    server: LocalServer, http: httpx.AsyncClient
) -> None:
    server.route("plc.test", f"/{PLC_DID}", reply(200, plc_doc(handle="bob.test")))
    server.route("bob.test", "/.well-known/atproto-did", reply(200, OTHER_DID))
    identity = await make_resolver(server, http).resolve_identity(PLC_DID)
    assert identity.handle is None
    assert identity.display_handle == "handle.invalid"
    assert identity.doc.handle == "bob.test"  # claimed, not verified


async def test_handle_points_at_a_document_that_does_not_claim_it(
    server: LocalServer, http: httpx.AsyncClient
) -> None:
    server.route("plc.test", f"/{PLC_DID}", reply(200, plc_doc(handle="alice.test")))
    server.route("mallory.test", "/.well-known/atproto-did", reply(200, PLC_DID))
    identity = await make_resolver(server, http).resolve_identity("mallory.test")
    assert (identity.did, identity.handle) == (PLC_DID, None)


async def test_handle_that_does_not_resolve(server: LocalServer, http: httpx.AsyncClient) -> None:
    with pytest.raises(HandleNotFound):
        await make_resolver(server, http).resolve_identity("nobody.test")


async def test_invalidate_forgets_the_claimed_handle(
    server: LocalServer, http: httpx.AsyncClient
) -> None:
    resolver = alice_both_ways(server, http, "alice.test")
    assert (await resolver.resolve_identity(PLC_DID)).handle == "alice.test"
    # alice.test is handed to another account; the identity event makes us look again.
    server.route("alice.test", "/.well-known/atproto-did", reply(200, OTHER_DID))
    assert (await resolver.resolve_identity(PLC_DID)).handle == "alice.test"  # cached
    resolver.invalidate(PLC_DID)
    assert (await resolver.resolve_identity(PLC_DID)).handle is None


async def test_claimed_handle_compares_case_insensitively(
    server: LocalServer, http: httpx.AsyncClient
) -> None:
    # A document may spell its handle in any case; the handle still verifies, in normal form.
    resolver = alice_both_ways(server, http, "Alice.TEST")
    for query in (PLC_DID, "alice.test", "ALICE.Test"):
        identity = await resolver.resolve_identity(query)
        assert (identity.did, identity.handle) == (PLC_DID, "alice.test")
