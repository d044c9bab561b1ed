"""Keys, signatures and did:key against the official crypto vectors (spec-cryptography.md)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import multibase

from atcore import keys
from atcore.errors import InvalidKey
from atcore.keys import (
    LEGACY_KEY_TYPES,
    K256PublicKey,
    P256PublicKey,
    PrivateKey,
    generate_k256,
    generate_p256,
    parse_did_key,
    parse_multibase_key,
    private_key_from_bytes,
    private_key_from_hex,
    public_key_from_compressed,
    verify_did_key_signature,
)
from tests.vectors import INTEROP

CRYPTO = INTEROP / "crypto"
ORDERS = {
    "k256": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    "p256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}
GENERATORS = {"k256": generate_k256, "p256": generate_p256}
SIGNERS: tuple[PrivateKey, ...] = (generate_k256(), generate_p256())


def _load(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((CRYPTO / name).read_text())
    return entries


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _flip_s(sig: bytes, curve: str) -> bytes:
    """The malleated twin (r, n - s) of a signature."""
    s = int.from_bytes(sig[32:], "big")
    return sig[:32] + (ORDERS[curve] - s).to_bytes(32, "big")


SIGNATURE_FIXTURES = _load("signature-fixtures.json")


@pytest.mark.parametrize("fx", SIGNATURE_FIXTURES, ids=lambda fx: fx["comment"])
def test_signature_fixture(fx: dict[str, Any]) -> None:
    message = _b64(fx["messageBase64"])
    sig = _b64(fx["signatureBase64"])
    key = parse_did_key(fx["publicKeyDid"])
    legacy = parse_multibase_key(fx["publicKeyMultibase"], LEGACY_KEY_TYPES[fx["didDocSuite"]])
    assert legacy == key
    assert key.jwt_alg == fx["algorithm"]
    assert key.did_key() == fx["publicKeyDid"]
    assert key.verify(message, sig) is fx["validSignature"]
    assert legacy.verify(message, sig) is fx["validSignature"]
    assert verify_did_key_signature(fx["publicKeyDid"], message, sig) is fx["validSignature"]
    if "high-s" in fx["tags"]:
        # Rejected only for being high-S: the low-S twin of the same signature verifies.
        assert key.verify(message, _flip_s(sig, key.curve))


def test_signature_fixtures_cover_both_curves_and_failure_kinds() -> None:
    tags = {(fx["algorithm"], tag) for fx in SIGNATURE_FIXTURES for tag in fx["tags"]}
    assert {("ES256", "high-s"), ("ES256K", "high-s")} <= tags
    assert {("ES256", "der-encoded"), ("ES256K", "der-encoded")} <= tags


@pytest.mark.parametrize("entry", _load("w3c_didkey_K256.json"), ids=lambda e: e["publicDidKey"])
def test_w3c_didkey_k256(entry: dict[str, Any]) -> None:
    key = private_key_from_hex("k256", entry["privateKeyBytesHex"])
    assert key.public_key().did_key() == entry["publicDidKey"]
    assert parse_did_key(entry["publicDidKey"]) == key.public_key()
    assert key.hex() == entry["privateKeyBytesHex"]


@pytest.mark.parametrize("entry", _load("w3c_didkey_P256.json"), ids=lambda e: e["publicDidKey"])
def test_w3c_didkey_p256(entry: dict[str, Any]) -> None:
    raw = multibase.decode("z" + entry["privateKeyBytesBase58"])
    key = private_key_from_bytes("p256", raw)
    assert key.public_key().did_key() == entry["publicDidKey"]
    assert parse_did_key(entry["publicDidKey"]) == key.public_key()
    assert key.to_bytes() == raw


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_round_trip(curve: str) -> None:
    key = GENERATORS[curve]()
    assert key.curve == curve
    public = key.public_key()
    sig = key.sign(b"hello world")
    assert len(sig) == 64
    assert public.verify(b"hello world", sig)
    assert not public.verify(b"hello world!", sig)
    assert not GENERATORS[curve]().public_key().verify(b"hello world", sig)

    again = private_key_from_bytes(curve, key.to_bytes())
    assert again.public_key() == public
    assert private_key_from_hex(curve, key.hex()).public_key() == public
    assert again.sign(b"hello world") == sig  # RFC 6979: deterministic
    assert parse_did_key(public.did_key()) == public
    assert public.did_key() == "did:key:" + public.multibase()
    assert parse_multibase_key(public.multibase()) == public
    assert public_key_from_compressed(curve, public.compressed()) == public
    assert len(public.compressed()) == 33
    assert hash(public_key_from_compressed(curve, public.compressed())) == hash(public)
    assert "PrivateKey" in repr(key) and key.hex() not in repr(key)


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_uncompressed_point_accepted(curve: str) -> None:
    public = GENERATORS[curve]().public_key()
    if isinstance(public, K256PublicKey):
        uncompressed = public._key.format(compressed=False)
    else:
        assert isinstance(public, P256PublicKey)
        uncompressed = public._key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert len(uncompressed) == 65
    assert public_key_from_compressed(curve, uncompressed) == public
    legacy = multibase.encode(uncompressed, "base58btc")
    assert parse_multibase_key(legacy, curve) == public


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_sign_is_always_low_s(curve: str) -> None:
    key = GENERATORS[curve]()
    half = ORDERS[curve] // 2
    for i in range(200):
        sig = key.sign(i.to_bytes(4, "big"))
        assert len(sig) == 64
        assert 0 < int.from_bytes(sig[32:], "big") <= half


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=256), bit=st.integers(min_value=0, max_value=511))
def test_flipped_bit_fails(data: bytes, bit: int) -> None:
    for key in SIGNERS:
        sig = key.sign(data)
        public = key.public_key()
        assert public.verify(data, sig)
        tampered = bytearray(sig)
        tampered[bit // 8] ^= 1 << (bit % 8)
        assert not public.verify(data, bytes(tampered))
        if data:
            changed = bytearray(data)
            changed[0] ^= 1
            assert not public.verify(bytes(changed), sig)


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_der_and_malformed_signatures_rejected(curve: str) -> None:
    key = GENERATORS[curve]()
    public = key.public_key()
    sig = key.sign(b"msg")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    assert not public.verify(b"msg", encode_dss_signature(r, s))
    assert not public.verify(b"msg", _flip_s(sig, curve))  # high-S twin
    n = ORDERS[curve]
    for bad in (b"", sig[:63], sig + b"\0", bytes(64), sig[:32] + bytes(32), b"\xff" * 64):
        assert not public.verify(b"msg", bad)
    assert not public.verify(b"msg", n.to_bytes(32, "big") + sig[32:])  # r == n


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_high_s_admitted_only_on_request(curve: str) -> None:
    key = GENERATORS[curve]()
    public = key.public_key()
    sig = key.sign(b"msg")
    high = _flip_s(sig, curve)
    assert public.verify(b"msg", high, allow_high_s=True)
    assert public.verify(b"msg", sig, allow_high_s=True)
    assert not public.verify(b"other", high, allow_high_s=True)
    n = ORDERS[curve]
    assert not public.verify(b"msg", sig[:32] + n.to_bytes(32, "big"), allow_high_s=True)


VALID_K256 = "did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc"


@pytest.mark.parametrize(
    "did",
    [
        "",
        "did:key:",
        "did:key:z",
        "did:web:example.com",
        VALID_K256[:-1],  # truncated key
        VALID_K256 + "a",  # extra byte
        VALID_K256.replace("z", "f", 1),  # not base58btc
        VALID_K256[:20] + "0" + VALID_K256[21:],  # '0' is not in base58
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",  # ed25519: unsupported
        "did:key:z" + "2" * 200,  # oversized
        "did:key:zxdM8dSstjrpZaRUwBmDvjGXweKuEMVN95A9oJBFjkWMh",  # bare key, no multicodec
    ],
)
def test_bad_did_key(did: str) -> None:
    with pytest.raises(InvalidKey):
        parse_did_key(did)
    with pytest.raises(InvalidKey):
        verify_did_key_signature(did, b"", bytes(64))


def test_bad_multibase_and_points() -> None:
    p256_multikey = "zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo"
    assert parse_multibase_key(p256_multikey, "p256").curve == "p256"
    with pytest.raises(InvalidKey, match="document says"):
        parse_multibase_key(p256_multikey, "k256")
    with pytest.raises(InvalidKey):
        parse_multibase_key("zxdM8dSstjrpZaRUwBmDvjGXweKuEMVN95A9oJBFjkWMh")  # needs a hint
    with pytest.raises(InvalidKey):
        parse_multibase_key(p256_multikey, "ed25519")
    point = parse_did_key(VALID_K256).compressed()
    for bad in (b"", point[:32], b"\x05" + point[1:], b"\x02" + b"\xff" * 32):
        with pytest.raises(InvalidKey):
            public_key_from_compressed("k256", bad)
    with pytest.raises(InvalidKey):
        public_key_from_compressed("p384", point)


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_bad_private_keys(curve: str) -> None:
    n = ORDERS[curve]
    for raw in (bytes(32), n.to_bytes(32, "big"), b"\xff" * 32, bytes(31) + b"\1" + b"\0"):
        with pytest.raises(InvalidKey):
            private_key_from_bytes(curve, raw)
    largest = (n - 1).to_bytes(32, "big")
    assert private_key_from_bytes(curve, largest).to_bytes() == largest
    for text in ("", "zz" * 32, "00" * 31, "00" * 32):
        with pytest.raises(InvalidKey):
            private_key_from_hex(curve, text)


@given(st.binary(max_size=70))
def test_base58_matches_multiformats(raw: bytes) -> None:
    # multiformats is the independent reference; ours is the fast path used for did:key.
    text = multibase.encode(raw, "base58btc")
    assert "z" + keys._b58encode(raw) == text
    assert keys._b58decode(text[1:]) == raw
