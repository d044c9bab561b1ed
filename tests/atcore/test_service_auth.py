"""atcore.service_auth: inter-service JWTs signed with real keys, checked as the reference does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atcore.errors import DidNotFound
from atcore.identity.diddoc import DidDocument, parse_did_document
from atcore.jwt import b64url, encode_es
from atcore.keys import PrivateKey, generate_k256, generate_p256
from atcore.service_auth import (
    BadJwt,
    BadJwtAudience,
    BadJwtIss,
    BadJwtLexiconMethod,
    BadJwtSignature,
    BadJwtType,
    JwtExpired,
    ServiceTokens,
    verify_service_jwt,
)
from atcore.syntax.did import Did
from atcore.xrpc.errors import AuthRequired

ALICE = Did("did:plc:ewvi7nxzyoun6zhxrhs64oiz")
FEEDGEN = "did:web:feeds.example.com"
LXM = "app.bsky.feed.getFeedSkeleton"
NOW = 1_700_000_000


def document(did: Did, key: PrivateKey) -> DidDocument:
    doc = {
        "id": did,
        "verificationMethod": [
            {
                "id": f"{did}#atproto",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": key.public_key().multibase(),
            }
        ],
    }
    return parse_did_document(doc, did)


class Documents:
    """DID documents as a caching resolver serves them: `cached` until a refresh, which reads
    `current` (what the PLC directory now holds)."""

    def __init__(self) -> None:
        self.cached: dict[str, DidDocument] = {}
        self.current: dict[str, DidDocument] = {}
        self.refreshes = 0

    def publish(self, did: Did, key: PrivateKey) -> None:
        self.current[did] = document(did, key)
        self.cached.setdefault(did, self.current[did])

    async def resolve_did(self, did: str) -> DidDocument:
        if did not in self.cached:
            raise DidNotFound(did)
        return self.cached[did]

    async def refresh(self, did: str) -> DidDocument:
        self.refreshes += 1
        self.cached.pop(did, None)
        if did in self.current:
            self.cached[did] = self.current[did]
        return await self.resolve_did(did)


def claims(**extra: Any) -> dict[str, Any]:
    base = {"iat": NOW, "iss": ALICE, "aud": FEEDGEN, "exp": NOW + 60, "lxm": LXM, "jti": "x"}
    return {k: v for k, v in {**base, **extra}.items() if v is not None}


async def verify(token: str, docs: Documents, **options: Any) -> Any:
    kwargs: dict[str, Any] = {"audience": FEEDGEN, "lxm": LXM, "documents": docs, "now": NOW}
    return await verify_service_jwt(token, **{**kwargs, **options})


@pytest.fixture
def key() -> PrivateKey:
    return generate_k256()


@pytest.fixture
def docs(key: PrivateKey) -> Documents:
    docs = Documents()
    docs.publish(ALICE, key)
    return docs


@pytest.mark.parametrize("generate", [generate_k256, generate_p256])
async def test_valid_token(generate: Any) -> None:
    key = generate()
    docs = Documents()
    docs.publish(ALICE, key)
    verified = await verify(encode_es(claims(), key), docs)
    assert (verified.did, verified.aud, verified.lxm, verified.exp) == (
        ALICE,
        FEEDGEN,
        LXM,
        NOW + 60,
    )
    assert docs.refreshes == 0


async def test_service_issuer_uses_the_did_part(key: PrivateKey, docs: Documents) -> None:
    verified = await verify(encode_es(claims(iss=f"{ALICE}#atproto_labeler"), key), docs)
    assert verified.iss == f"{ALICE}#atproto_labeler" and verified.did == ALICE


async def test_forged_token_is_refused_after_one_refresh(key: PrivateKey, docs: Documents) -> None:
    forged = encode_es(claims(), generate_k256())
    with pytest.raises(BadJwtSignature) as refused:
        await verify(forged, docs)
    assert refused.value.status == 401 and refused.value.error == "BadJwtSignature"
    assert docs.refreshes == 1


async def test_rotated_key_is_found_by_the_refresh(key: PrivateKey, docs: Documents) -> None:
    rotated = generate_p256()
    docs.current[ALICE] = document(ALICE, rotated)  # the cache still holds the old key
    verified = await verify(encode_es(claims(), rotated), docs)
    assert verified.did == ALICE and docs.refreshes == 1
    # The old key is no longer the issuer's.
    with pytest.raises(BadJwtSignature):
        await verify(encode_es(claims(), key), docs)


async def test_expiry(key: PrivateKey, docs: Documents) -> None:
    token = encode_es(claims(exp=NOW), key)
    assert (await verify(token, docs)).exp == NOW  # valid through its exp second
    with pytest.raises(JwtExpired) as expired:
        await verify(token, docs, now=NOW + 1)
    assert expired.value.error == "JwtExpired" and expired.value.status == 401


async def test_audience(key: PrivateKey, docs: Documents) -> None:
    token = encode_es(claims(aud="did:web:other.example.com"), key)
    with pytest.raises(BadJwtAudience):
        await verify(token, docs)
    assert (await verify(token, docs, audience=None)).aud == "did:web:other.example.com"


async def test_lexicon_method(key: PrivateKey, docs: Documents) -> None:
    wrong = encode_es(claims(lxm="com.atproto.repo.createRecord"), key)
    with pytest.raises(BadJwtLexiconMethod, match="bad jwt lexicon method"):
        await verify(wrong, docs)
    missing = encode_es(claims(lxm=None), key)
    with pytest.raises(BadJwtLexiconMethod, match="missing jwt lexicon method"):
        await verify(missing, docs)
    assert (await verify(missing, docs, lxm=None)).lxm is None


async def test_issuer(key: PrivateKey, docs: Documents) -> None:
    for iss in ("alice", "did:plc:", f"{ALICE}#", f"{ALICE}#a#b"):
        with pytest.raises(BadJwtIss):
            await verify(encode_es(claims(iss=iss), key), docs)
    unknown = encode_es(claims(iss="did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"), key)
    with pytest.raises(BadJwtIss, match="could not resolve"):
        await verify(unknown, docs)


def signed(header: dict[str, Any], payload: dict[str, Any], key: PrivateKey) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


async def test_token_types_and_algorithms(key: PrivateKey, docs: Documents) -> None:
    for typ in ("at+jwt", "refresh+jwt", "dpop+jwt"):
        with pytest.raises(BadJwtType):
            await verify(signed({"typ": typ, "alg": "ES256K"}, claims(), key), docs)
    for alg in ("ES256", "HS256", "none"):
        with pytest.raises(BadJwtSignature):
            await verify(signed({"typ": "JWT", "alg": alg}, claims(), key), docs)
    with pytest.raises(BadJwt):
        await verify(signed({"typ": "JWT"}, claims(), key), docs)
    assert await verify(signed({"alg": "ES256K"}, claims(), key), docs)


@pytest.mark.parametrize(
    "payload",
    [
        claims(iss=None),
        claims(aud=None),
        claims(exp=None),
        claims(exp="soon"),
        claims(exp=True),
        claims(lxm=7),
        claims(iat="now"),
        claims(aud=["a"]),
    ],
)
async def test_malformed_claims(key: PrivateKey, docs: Documents, payload: Any) -> None:
    with pytest.raises(BadJwt):
        await verify(signed({"typ": "JWT", "alg": "ES256K"}, payload, key), docs)


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c", "[" * 3000 + ".e30.AA", f"{b64url(b'[' * 2000)}.e30.AA", "x" * 10_000],
)
async def test_malformed_tokens(docs: Documents, token: str) -> None:
    with pytest.raises(BadJwt) as refused:
        await verify(token, docs)
    assert isinstance(refused.value, AuthRequired) and refused.value.status == 401


async def test_remembered_tokens_recheck_claims_and_key(key: PrivateKey, docs: Documents) -> None:
    tokens = ServiceTokens(docs, size=2)
    token = encode_es(claims(), key)
    for _ in range(2):
        verified = await tokens.verify(token, audience=FEEDGEN, lxm=LXM, now=NOW)
        assert (verified.did, verified.lxm) == (ALICE, LXM)
    # Every claim is checked on each repeat, not only the first time.
    with pytest.raises(BadJwtLexiconMethod):
        await tokens.verify(token, audience=FEEDGEN, lxm="app.bsky.feed.getTimeline", now=NOW)
    with pytest.raises(BadJwtAudience):
        await tokens.verify(token, audience="did:web:other.example.com", lxm=LXM, now=NOW)
    with pytest.raises(JwtExpired):
        await tokens.verify(token, audience=FEEDGEN, lxm=LXM, now=NOW + 61)
    # A forged token is refused however often it comes, and is not remembered.
    forged = encode_es(claims(), generate_k256())
    for _ in range(2):
        with pytest.raises(BadJwtSignature):
            await tokens.verify(forged, audience=FEEDGEN, lxm=LXM, now=NOW)
    # Once the issuer's key is rotated away, a remembered token no longer verifies.
    await tokens.verify(token, audience=FEEDGEN, lxm=LXM, now=NOW)
    rotated = generate_k256()
    docs.current[ALICE] = docs.cached[ALICE] = document(ALICE, rotated)
    with pytest.raises(BadJwtSignature):
        await tokens.verify(token, audience=FEEDGEN, lxm=LXM, now=NOW)
    assert (
        await tokens.verify(encode_es(claims(), rotated), audience=FEEDGEN, lxm=LXM, now=NOW)
    ).did == ALICE
