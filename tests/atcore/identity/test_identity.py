"""DID documents, the outbound address guard, the TTL cache and DNS TXT handle records."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any, cast

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multiformats import multibase

from atcore.errors import (
    IdentityError,
    InvalidDidDocument,
    UnsafeAddress,
)
from atcore.identity.cache import TtlCache
from atcore.identity.diddoc import normalize_service_url, parse_did_document
from atcore.identity.dnstxt import DnsTxtLookup, parse_atproto_txt
from atcore.identity.netguard import AddressGuard, is_public_address
from atcore.keys import generate_k256, generate_p256
from atcore.syntax.did import Did
from tests.atcore.identity.support import (
    LEGACY_K256,
    MULTIKEY_K256,
    OTHER_DID,
    PLC_DID,
    WEB_DID,
    fixed_lookup,
    plc_doc,
)

# --- DID documents ---


def test_plc_document() -> None:
    doc = parse_did_document(plc_doc(handle="Alice.Test"), PLC_DID)
    assert doc.did == PLC_DID
    assert doc.handle == "alice.test"
    assert doc.require_signing_key().did_key() == f"did:key:{MULTIKEY_K256}"
    assert doc.pds_endpoint == "https://morel.us-east.host.bsky.network"


def test_legacy_key_is_the_same_key() -> None:
    raw = plc_doc()
    raw["verificationMethod"] = [
        {
            "id": "#atproto",
            "type": "EcdsaSecp256k1VerificationKey2019",
            "controller": PLC_DID,
            "publicKeyMultibase": LEGACY_K256,
        }
    ]
    assert parse_did_document(raw, PLC_DID).require_signing_key().did_key() == (
        f"did:key:{MULTIKEY_K256}"
    )


def test_legacy_p256_uncompressed_key() -> None:
    public = generate_p256().public_key()
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public.compressed())
    uncompressed = point.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raw = plc_doc(did=WEB_DID)
    raw["verificationMethod"] = [
        {
            "id": "#atproto",
            "type": "EcdsaSecp256r1VerificationKey2019",
            "controller": WEB_DID,
            "publicKeyMultibase": multibase.encode(uncompressed, "base58btc"),
        }
    ]
    assert parse_did_document(raw, WEB_DID).require_signing_key().did_key() == public.did_key()


def test_first_valid_entries_win() -> None:
    good = generate_k256().public_key()
    raw = plc_doc()
    raw["alsoKnownAs"] = ["https://alice.test", "at://not_a_handle", "at://bob.test", "at://c.test"]
    raw["verificationMethod"] = [
        {"id": "#other", "type": "Multikey", "controller": PLC_DID,
         "publicKeyMultibase": MULTIKEY_K256},
        {"id": f"{OTHER_DID}#atproto", "type": "Multikey", "controller": PLC_DID,
         "publicKeyMultibase": MULTIKEY_K256},
        {"id": "#atproto", "type": "Multikey", "controller": OTHER_DID,
         "publicKeyMultibase": MULTIKEY_K256},
        {"id": "#atproto", "type": "JsonWebKey2020", "controller": PLC_DID,
         "publicKeyMultibase": MULTIKEY_K256},
        {"id": "#atproto", "type": "Multikey", "controller": PLC_DID,
         "publicKeyMultibase": "zjunk"},
        {"id": "#atproto", "type": "Multikey", "controller": PLC_DID,
         "publicKeyMultibase": good.multibase()},
    ]  # fmt: skip
    raw["service"] = [
        {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "ftp://x.test"},
        {"id": "#atproto_pds", "type": "Other", "serviceEndpoint": "https://wrong-type.test"},
        {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": {"a": 1}},
        {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
         "serviceEndpoint": "https://pds.test:8443/"},
    ]  # fmt: skip
    doc = parse_did_document(raw, PLC_DID)
    assert doc.handle == "bob.test"
    assert doc.signing_key is not None and doc.signing_key.did_key() == good.did_key()
    assert doc.pds_endpoint == "https://pds.test:8443"


def test_missing_pieces_are_none() -> None:
    doc = parse_did_document({"id": PLC_DID}, PLC_DID)
    assert (doc.handle, doc.signing_key, doc.pds_endpoint) == (None, None, None)
    with pytest.raises(InvalidDidDocument, match="no valid #atproto key"):
        doc.require_signing_key()
    with pytest.raises(InvalidDidDocument, match="no valid PDS"):
        doc.require_pds_endpoint()


@pytest.mark.parametrize(
    "change",
    [
        {"id": OTHER_DID},
        {"id": None},
        {"alsoKnownAs": "at://alice.test"},
        {"alsoKnownAs": [1]},
        {"verificationMethod": {"id": "#atproto"}},
        {"verificationMethod": ["#atproto"]},
        {"service": [None]},
        {"alsoKnownAs": [f"at://h{i}.test" for i in range(65)]},
    ],
)
def test_malformed_documents(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidDidDocument):
        parse_did_document(plc_doc() | change, PLC_DID)


def test_not_an_object() -> None:
    with pytest.raises(InvalidDidDocument):
        parse_did_document([plc_doc()], PLC_DID)


def test_service_endpoint_lookup() -> None:
    did = Did("did:web:api.bsky.app")
    raw = {
        "id": did,
        "service": [
            {"id": f"{did}#bsky_notif", "type": "BskyNotificationService",
             "serviceEndpoint": "https://api.bsky.app"},
            {"id": "#bsky_appview", "type": "BskyAppView", "serviceEndpoint": "https://api.bsky.app"},
            {"id": "did:web:elsewhere.test#atproto_labeler", "type": "AtprotoLabeler",
             "serviceEndpoint": "https://evil.test"},
        ],
    }  # fmt: skip
    doc = parse_did_document(raw, did)
    assert doc.service_endpoint("#bsky_appview") == "https://api.bsky.app"
    assert doc.service_endpoint("bsky_appview", "BskyAppView") == "https://api.bsky.app"
    assert doc.service_endpoint(f"{did}#bsky_notif") == "https://api.bsky.app"
    assert doc.service_endpoint("#bsky_appview", "AtprotoLabeler") is None
    assert doc.service_endpoint("#atproto_labeler") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://pds.example.com", "https://pds.example.com"),
        ("https://PDS.example.com/", "https://pds.example.com"),
        ("http://localhost:2583", "http://localhost:2583"),
        ("https://[2001:db8::1]:443", "https://[2001:db8::1]:443"),
        ("https://pds.example.com/xrpc", None),
        ("https://user:pw@pds.example.com", None),
        ("https://pds.example.com?x=1", None),
        ("https://pds.example.com#frag", None),
        ("https://pds.example.com:99999", None),
        ("wss://pds.example.com", None),
        ("https://", None),
        ("https://pds example.com", None),
    ],
)
def test_normalize_service_url(url: str, expected: str | None) -> None:
    assert normalize_service_url(url) == expected


# --- address guard ---


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("192.0.2.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::", False),
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_address_guard() -> None:
    public = fixed_lookup("93.184.216.34", "2606:4700::1")
    assert await AddressGuard(lookup=public).addresses("pds.example.com") == [
        "93.184.216.34",
        "2606:4700::1",
    ]
    for addresses in [("93.184.216.34", "10.0.0.1"), (), ("not-an-ip",)]:
        with pytest.raises(UnsafeAddress):
            await AddressGuard(lookup=fixed_lookup(*addresses)).addresses("pds.example.com")
    for literal in ["127.0.0.1", "8.8.8.8", "[::1]", "::ffff:127.0.0.1"]:
        with pytest.raises(UnsafeAddress, match="IP address"):
            await AddressGuard(lookup=fixed_lookup("8.8.8.8")).addresses(literal)
    with pytest.raises(UnsafeAddress):  # the system resolver, offline: localhost is loopback
        await AddressGuard().addresses("localhost")


async def test_address_guard_in_dev_mode() -> None:
    dev = AddressGuard(allow_private=True, lookup=fixed_lookup("10.0.0.1", "::1"))
    assert await dev.addresses("pds.test") == ["10.0.0.1", "::1"]
    assert await dev.addresses("[::1]") == ["::1"]
    assert await dev.addresses("127.0.0.1") == ["127.0.0.1"]
    assert "127.0.0.1" in await AddressGuard(allow_private=True).addresses("localhost")
    with pytest.raises(UnsafeAddress):
        await AddressGuard(allow_private=True, lookup=fixed_lookup("nonsense")).addresses("a.test")


# --- cache ---


def test_ttl_cache_expiry_and_lru() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(2, 10.0, lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now most recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] = 10.0
    assert cache.get("a") is None and len(cache) == 1


# --- handles ---


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([f"did={PLC_DID}"], PLC_DID),
        (["v=spf1 -all", f"did={PLC_DID}", "google-site-verification=x"], PLC_DID),
        ([f"did={PLC_DID}", f"did={PLC_DID}"], PLC_DID),  # duplicates agree
        ([f"did={PLC_DID}", f"did={OTHER_DID}"], None),  # ambiguous: must fail
        ([f"did={PLC_DID}", "did=not a did"], PLC_DID),
        ([f"DID={PLC_DID}"], None),
        ([f" did={PLC_DID}"], None),
        ([f"did={PLC_DID} "], None),
        ([PLC_DID], None),
        ([], None),
    ],
)
def test_parse_atproto_txt(values: list[str], expected: Did | None) -> None:
    assert parse_atproto_txt(values) == expected


async def test_real_dns_server() -> None:
    """DnsTxtLookup against a DNS server on 127.0.0.1: record strings are joined."""
    answers = {
        "_atproto.alice.test.": [[b"did=did:plc:ewvi7nxzyoun6", b"zhxrhs64oiz"], [b"v=spf1"]]
    }

    class Responder(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.DatagramTransport, transport)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            name = query.question[0].name
            records = answers.get(name.to_text())
            if records is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                text = [" ".join(f'"{s.decode()}"' for s in strings) for strings in records]
                response.answer.append(
                    dns.rrset.from_text_list(name, 60, dns.rdataclass.IN, dns.rdatatype.TXT, text)
                )
            self.transport.sendto(response.to_wire(), addr)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        lookup = DnsTxtLookup(2.0, nameservers=["127.0.0.1"], port=port)
        values = await lookup("_atproto.alice.test")
        assert sorted(values) == [f"did={PLC_DID}", "v=spf1"]
        assert parse_atproto_txt(values) == PLC_DID
        assert await lookup("_atproto.nobody.test") == []
    finally:
        transport.close()


async def test_silent_dns_server_is_an_identity_error() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        port = transport.get_extra_info("sockname")[1]
        lookup = DnsTxtLookup(0.3, nameservers=["127.0.0.1"], port=port)
        with pytest.raises(IdentityError):
            await lookup("_atproto.alice.test")
    finally:
        transport.close()
