"""atcore.jwt: encoding, verification, and hostile tokens that must fail as JwtError only."""

from __future__ import annotations

import base64
import json

import pytest

from atcore.jwt import (
    MAX_DEPTH,
    MAX_TOKEN_LENGTH,
    Hs256Tokens,
    JwtError,
    b64url,
    decode,
    encode_es,
    encode_hs256,
    verify_hs256,
)
from atcore.keys import generate_k256, generate_p256

SECRET = "test-secret"
HEADER = b64url(b'{"typ":"JWT","alg":"HS256"}')
SIG = b64url(bytes(32))


def token_with(payload: bytes | str) -> str:
    raw = payload.encode() if isinstance(payload, str) else payload
    return f"{HEADER}.{b64url(raw)}.{SIG}"


HOSTILE = [
    token_with("[" * 2000),
    token_with('{"a":' * 1500 + "1" + "}" * 1500),
    f"{b64url(b'[' * 3000)}.{b64url(b'{}')}.{SIG}",
    token_with("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)),
    "!!!.@@@.###",
    f"{HEADER}=.{b64url(b'{}')}.{SIG}",
    f"{HEADER}.{b64url(b'{}')}.a",  # 1 character mod 4 is no base64 at all
    "é.é.é",
    f"{HEADER}.e30+.{SIG}",  # standard, not url-safe, alphabet
    token_with("not json"),
    token_with(b"\xff\xfe{}"),
    token_with("[]"),
    token_with("1"),
    token_with('"text"'),
    token_with("null"),
    token_with('{"sub":"\\ud800"}'),
    token_with('{"exp":NaN}'),
    token_with('{"exp":Infinity}'),
    f"{HEADER}.{b64url(b'{}')}",
    f"{HEADER}.{b64url(b'{}')}.{SIG}.{SIG}",
    "",
    "..",
    "a" * (MAX_TOKEN_LENGTH + 1),
]


@pytest.mark.parametrize("token", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_tokens_fail_as_jwt_error(token: str) -> None:
    with pytest.raises(JwtError):
        decode(token)
    with pytest.raises(JwtError):
        verify_hs256(token, SECRET)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    payload = {"sub": "[" * 500 + '\\"{' * 100, "exp": 1}
    jwt = decode(token_with(json.dumps(payload)))
    assert jwt.payload == payload


def test_hs256_round_trip_and_expiry() -> None:
    token = encode_hs256({"sub": "did:plc:abc", "exp": 2_000_000_000}, SECRET, "at+jwt")
    jwt = verify_hs256(token, SECRET, now=1_000_000_000)
    assert jwt.header == {"typ": "at+jwt", "alg": "HS256"}
    assert jwt.payload["sub"] == "did:plc:abc"
    with pytest.raises(JwtError, match="could not be verified"):
        verify_hs256(token, "other-secret", now=1_000_000_000)
    with pytest.raises(JwtError) as expired:
        verify_hs256(token, SECRET, now=2_000_000_000)
    assert expired.value.expired


def test_remembered_tokens_still_expire_and_others_are_checked() -> None:
    tokens = Hs256Tokens(SECRET, size=2)
    first = encode_hs256({"sub": "did:plc:a", "exp": 2_000_000_000}, SECRET, "at+jwt")
    assert tokens.verify(first, now=1_000_000_000) is tokens.verify(first, now=1_000_000_001)
    with pytest.raises(JwtError) as expired:
        tokens.verify(first, now=2_000_000_000)
    assert expired.value.expired
    with pytest.raises(JwtError, match="could not be verified"):
        Hs256Tokens("other-secret").verify(first, now=1_000_000_000)
    forged = first[: first.rindex(".") + 1] + SIG
    with pytest.raises(JwtError, match="could not be verified"):
        tokens.verify(forged, now=1_000_000_000)
    # At most `size` remembered, the least recently used going first.
    others = [
        encode_hs256({"sub": f"did:plc:{n}", "exp": 2_000_000_000}, SECRET, "at+jwt")
        for n in ("b", "c", "d")
    ]
    for token in others:
        tokens.verify(token, now=1_000_000_000)
    assert list(tokens._checked) == others[1:]


def test_hs256_refuses_other_algorithms() -> None:
    key = generate_k256()
    token = encode_es({"exp": 2_000_000_000}, key)
    with pytest.raises(JwtError, match="not HS256"):
        verify_hs256(token, SECRET)
    none_header = b64url(json.dumps({"alg": "none"}).encode())
    none_alg = ".".join((none_header, b64url(b"{}"), ""))
    with pytest.raises(JwtError):
        verify_hs256(none_alg, SECRET)


@pytest.mark.parametrize("generate", [generate_k256, generate_p256])
def test_es_tokens_verify_against_their_key_only(generate: object) -> None:
    key = generate()  # type: ignore[operator]
    token = encode_es({"iss": "did:plc:abc", "exp": 2_000_000_000}, key)
    jwt = decode(token)
    assert jwt.header == {"typ": "JWT", "alg": key.public_key().jwt_alg}
    jwt.verify_key(key.public_key())
    with pytest.raises(JwtError, match="does not match jwt issuer"):
        jwt.verify_key(generate().public_key())  # type: ignore[operator]
    other_curve = generate_p256() if key.public_key().curve == "k256" else generate_k256()
    with pytest.raises(JwtError, match="does not match the key"):
        jwt.verify_key(other_curve.public_key())


def test_signature_is_over_the_segments_as_sent() -> None:
    key = generate_k256()
    head, payload, sig = encode_es({"exp": 2_000_000_000, "aud": "a"}, key).split(".")
    swapped = base64.urlsafe_b64encode(b'{"exp":2000000000,"aud":"b"}').rstrip(b"=").decode()
    with pytest.raises(JwtError):
        decode(f"{head}.{swapped}.{sig}").verify_key(key.public_key())
