"""K-256 and P-256 signing keys, multikey and did:key encodings (spec-cryptography.md).

Signatures are always the 64-byte compact ``r || s`` form over sha256(data), low-S only: DER,
high-S and any other length are rejected, as the spec requires for both curves.

K-256 runs on coincurve (libsecp256k1: signs low-S, ~10x faster than cryptography). P-256 runs
on cryptography, which signs high-S about half the time and accepts high-S, so this module
normalises on signing and checks ``s <= n/2`` itself before verifying.

did:key and multibase strings are decoded with a small base58btc codec of our own instead of
``multiformats``: DESIGN.md measured multiformats at ~200 µs per call (26 µs on a quiet
machine), while a relay resolves a did:key for every commit it verifies. The own decoder is a
few µs, and ``parse_did_key`` keeps an LRU cache of recent keys so a busy account's key is
parsed once; keys are immutable, so sharing a cached one is safe.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Final

import coincurve
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from atcore.errors import InvalidKey

# DID document verification-method types that carry a bare key (no multicodec) -> curve.
LEGACY_KEY_TYPES: Final = {
    "EcdsaSecp256k1VerificationKey2019": "k256",
    "EcdsaSecp256r1VerificationKey2019": "p256",
}

_K256_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# Multicodec varints from the spec: secp256k1-pub 0xE7 and p256-pub 0x1200.
_K256_PREFIX: Final = b"\xe7\x01"
_P256_PREFIX: Final = b"\x80\x24"
_DID_KEY_PREFIX: Final = "did:key:"
# A 65-byte uncompressed key + 2-byte prefix is 92 base58 characters; anything longer is junk,
# and bounding it keeps the quadratic big-int base58 decode cheap.
_MAX_MULTIBASE_LEN: Final = 100
_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}
_P256_SIGN: Final = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_P256_VERIFY: Final = ec.ECDSA(hashes.SHA256())


def _b58encode(data: bytes) -> str:
    num = int.from_bytes(data, "big")
    digits = []
    while num:
        num, rem = divmod(num, 58)
        digits.append(_B58_ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def _b58decode(text: str) -> bytes:
    num = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise InvalidKey(f"invalid base58btc character {char!r}")
        num = num * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + num.to_bytes((num.bit_length() + 7) // 8, "big")


def _low_s_compact(sig: bytes, order: int, allow_high_s: bool) -> tuple[int, int] | None:
    """(r, s) of a well-formed compact low-S signature, else None; with `allow_high_s` a
    high-S one is accepted as its low-S twin (n - s), which verifies exactly when it does."""
    if len(sig) != 64:
        return None
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if allow_high_s and order // 2 < s < order:
        s = order - s
    if not (0 < r < order and 0 < s <= order // 2):
        return None
    return r, s


def _check_scalar(raw: bytes, order: int) -> None:
    if len(raw) != 32:
        raise InvalidKey(f"private key must be 32 bytes, got {len(raw)}")
    if not 0 < int.from_bytes(raw, "big") < order:
        raise InvalidKey("private key scalar is out of range for the curve")


def _check_point_encoding(raw: bytes) -> None:
    if not ((len(raw) == 33 and raw[0] in (2, 3)) or (len(raw) == 65 and raw[0] == 4)):
        raise InvalidKey(f"not a compressed or uncompressed EC point ({len(raw)} bytes)")


@dataclass(frozen=True, repr=False)
class PublicKey(ABC):
    """A public key, compared and hashed by curve and compressed point."""

    curve: ClassVar[str]
    jwt_alg: ClassVar[str]
    _prefix: ClassVar[bytes]
    _order: ClassVar[int]

    _compressed: bytes

    @classmethod
    @abstractmethod
    def _from_point(cls, raw: bytes) -> PublicKey:
        """Load a 33- or 65-byte SEC1 point; raises InvalidKey if it is not on the curve."""

    @abstractmethod
    def _verify_rs(self, data: bytes, r: int, s: int) -> bool:
        """Check an already range-checked (r, s) over sha256(data)."""

    def verify(self, data: bytes, sig: bytes, *, allow_high_s: bool = False) -> bool:
        """True only for a valid 64-byte compact low-S signature over sha256(data).

        `allow_high_s` also admits the high-S form, as the reference does for JWTs only
        (`allowMalleableSig`); repo commits and PLC operations must stay low-S.
        """
        rs = _low_s_compact(sig, self._order, allow_high_s)
        return rs is not None and self._verify_rs(data, *rs)

    def compressed(self) -> bytes:
        return self._compressed

    def multibase(self) -> str:
        """Multikey form: "z" + base58btc(multicodec prefix + compressed point)."""
        return "z" + _b58encode(self._prefix + self._compressed)

    def did_key(self) -> str:
        return _DID_KEY_PREFIX + self.multibase()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.did_key()!r})"


@dataclass(frozen=True, repr=False)
class K256PublicKey(PublicKey):
    curve = "k256"
    jwt_alg = "ES256K"
    _prefix = _K256_PREFIX
    _order = _K256_ORDER

    _key: coincurve.PublicKey = field(compare=False)

    @classmethod
    def _from_point(cls, raw: bytes) -> K256PublicKey:
        _check_point_encoding(raw)
        try:
            key = coincurve.PublicKey(raw)
        except ValueError as exc:
            raise InvalidKey("not a point on secp256k1") from exc
        return cls(key.format(compressed=True), key)

    def _verify_rs(self, data: bytes, r: int, s: int) -> bool:
        # libsecp256k1 itself also refuses high-S; the range check above is the contract.
        return bool(self._key.verify(encode_dss_signature(r, s), data))


@dataclass(frozen=True, repr=False)
class P256PublicKey(PublicKey):
    curve = "p256"
    jwt_alg = "ES256"
    _prefix = _P256_PREFIX
    _order = _P256_ORDER

    _key: ec.EllipticCurvePublicKey = field(compare=False)

    @classmethod
    def _from_point(cls, raw: bytes) -> P256PublicKey:
        _check_point_encoding(raw)
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError as exc:
            raise InvalidKey("not a point on P-256") from exc
        return cls(key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint), key)

    def _verify_rs(self, data: bytes, r: int, s: int) -> bool:
        try:
            self._key.verify(encode_dss_signature(r, s), data, _P256_VERIFY)
        except _CryptoInvalidSignature:
            return False
        return True


class PrivateKey(ABC):
    """A signing key; sign() always yields a 64-byte compact low-S signature over sha256."""

    curve: ClassVar[str]

    @abstractmethod
    def sign(self, data: bytes) -> bytes: ...

    @abstractmethod
    def public_key(self) -> PublicKey: ...

    @abstractmethod
    def to_bytes(self) -> bytes:
        """The 32-byte big-endian secret scalar."""

    def hex(self) -> str:
        return self.to_bytes().hex()

    def __repr__(self) -> str:
        # Never print the secret; the public key identifies the key well enough.
        return f"{type(self).__name__}({self.public_key().did_key()!r})"


class K256PrivateKey(PrivateKey):
    curve = "k256"

    def __init__(self, key: coincurve.PrivateKey) -> None:
        self._key = key
        self._public = K256PublicKey(key.public_key.format(compressed=True), key.public_key)

    def sign(self, data: bytes) -> bytes:
        # The recoverable form is compact r || s (+ recovery id); libsecp256k1 signs low-S.
        return bytes(self._key.sign_recoverable(data)[:64])

    def public_key(self) -> K256PublicKey:
        return self._public

    def to_bytes(self) -> bytes:
        return bytes(self._key.secret)


class P256PrivateKey(PrivateKey):
    curve = "p256"

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        public = key.public_key()
        self._public = P256PublicKey(
            public.public_bytes(Encoding.X962, PublicFormat.CompressedPoint), public
        )

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(data, _P256_SIGN))
        if s > _P256_ORDER // 2:
            s = _P256_ORDER - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def public_key(self) -> P256PublicKey:
        return self._public

    def to_bytes(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(32, "big")


_PUBLIC_BY_CURVE: Final[dict[str, type[PublicKey]]] = {"k256": K256PublicKey, "p256": P256PublicKey}
_PUBLIC_BY_PREFIX: Final = {cls._prefix: cls for cls in _PUBLIC_BY_CURVE.values()}


def _public_class(curve: str) -> type[PublicKey]:
    cls = _PUBLIC_BY_CURVE.get(curve)
    if cls is None:
        raise InvalidKey(f"unsupported curve {curve!r} (expected 'k256' or 'p256')")
    return cls


def generate_k256() -> K256PrivateKey:
    return K256PrivateKey(coincurve.PrivateKey())


def generate_p256() -> P256PrivateKey:
    return P256PrivateKey(ec.generate_private_key(ec.SECP256R1()))


def private_key_from_bytes(curve: str, raw: bytes) -> PrivateKey:
    """Load a 32-byte secret scalar for ``curve`` ("k256" or "p256")."""
    _check_scalar(raw, _public_class(curve)._order)
    if curve == "k256":
        return K256PrivateKey(coincurve.PrivateKey(bytes(raw)))
    return P256PrivateKey(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()))


def private_key_from_hex(curve: str, text: str) -> PrivateKey:
    if len(text) != 64:
        raise InvalidKey(f"private key hex must be 64 characters, got {len(text)}")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise InvalidKey("private key is not valid hex") from exc
    return private_key_from_bytes(curve, raw)


def public_key_from_compressed(curve: str, raw: bytes) -> PublicKey:
    """Load a SEC1 point: 33-byte compressed, or 65-byte uncompressed as legacy documents use."""
    return _public_class(curve)._from_point(bytes(raw))


@functools.lru_cache(maxsize=65_536)
def cached_public_key(curve: str, raw: bytes) -> PublicKey:
    """public_key_from_compressed, remembered: worker processes checking commits get the same
    keys as (curve, point) again and again."""
    return public_key_from_compressed(curve, raw)


def _decode_multibase(text: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("z"):
        raise InvalidKey(f"key must be base58btc multibase ('z...'): {text!r:.80}")
    if len(text) > _MAX_MULTIBASE_LEN:
        raise InvalidKey(f"multibase key too long ({len(text)} characters)")
    return _b58decode(text[1:])


def _from_multikey(raw: bytes) -> PublicKey:
    cls = _PUBLIC_BY_PREFIX.get(raw[:2])
    if cls is None:
        raise InvalidKey(f"unsupported multicodec prefix {raw[:2].hex()} (not k256 or p256)")
    if len(raw) != 35:
        raise InvalidKey(f"multikey must hold a 33-byte compressed point, got {len(raw) - 2}")
    return cls._from_point(raw[2:])


def parse_multibase_key(mb: str, curve_hint: str | None = None) -> PublicKey:
    """Parse a DID document's publicKeyMultibase.

    Without a hint the value is a multikey (multicodec prefix names the curve). With a hint
    (see LEGACY_KEY_TYPES) a bare 33/65-byte point is read on that curve; a multikey is still
    accepted if its codec agrees with the hint.
    """
    raw = _decode_multibase(mb)
    if curve_hint is None:
        return _from_multikey(raw)
    cls = _public_class(curve_hint)
    if len(raw) in (33, 65):
        return cls._from_point(raw)
    key = _from_multikey(raw)
    if key.curve != curve_hint:
        raise InvalidKey(f"multikey is {key.curve} but the document says {curve_hint}")
    return key


@functools.lru_cache(maxsize=8192)
def parse_did_key(did: str) -> PublicKey:
    """Parse "did:key:z..." (compressed K-256 or P-256 multikey); raises InvalidKey."""
    if not isinstance(did, str) or not did.startswith(_DID_KEY_PREFIX):
        raise InvalidKey(f"not a did:key: {did!r:.80}")
    return _from_multikey(_decode_multibase(did[len(_DID_KEY_PREFIX) :]))


def verify_did_key_signature(did_key: str, data: bytes, sig: bytes) -> bool:
    """Verify ``sig`` over ``data`` with the key in ``did_key``; InvalidKey if it is malformed."""
    return parse_did_key(did_key).verify(data, sig)
