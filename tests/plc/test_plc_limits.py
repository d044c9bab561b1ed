"""What a client may submit to the directory: the reference directory's limits (plc.limits)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from atcore import cbor
from atcore.identity.plc import Op, did_for_genesis, op_cid, sign_operation, update_op
from atcore.keys import generate_k256
from plc.app import create_app
from plc.config import PlcConfig
from tests.plc.support import T0, Account, Clock, create_did, post_op

Mutation = Callable[[Op, Account], Op]


def _key() -> str:
    return generate_k256().public_key().did_key()


def _rotation(account: Account) -> list[str]:
    return [account.recovery.public_key().did_key(), account.rotation.public_key().did_key()]


def _services(count: int, *, name: str = "s", type_: str = "T", endpoint: str = "https://e") -> Any:
    return {f"{name}{i}": {"type": type_, "endpoint": endpoint} for i in range(count)}


# (name, change to an operation, a fragment of its refusal or None: at the limit, it fits)
SHAPES: list[tuple[str, Mutation, str | None]] = [
    ("no-rotation-keys", lambda op, a: {**op, "rotationKeys": []}, "at least one rotation key"),
    (
        "duplicate-rotation-key",
        lambda op, a: {**op, "rotationKeys": [*_rotation(a), _rotation(a)[1]]},
        "duplicate rotation key",
    ),
    (
        "11-aliases",
        lambda op, a: {**op, "alsoKnownAs": [f"at://{i}.test" for i in range(11)]},
        "too many alsoKnownAs",
    ),
    (
        "10-aliases",
        lambda op, a: {**op, "alsoKnownAs": [f"at://{i}.test" for i in range(10)]},
        None,
    ),
    (
        "259-char-alias",
        lambda op, a: {**op, "alsoKnownAs": ["at://" + "a" * 254]},
        "alsoKnownAs entry too long",
    ),
    ("258-char-alias", lambda op, a: {**op, "alsoKnownAs": ["at://" + "a" * 253]}, None),
    # JavaScript counts UTF-16 units: 129 astral characters are 258 of them, 130 are 260.
    (
        "astral-alias",
        lambda op, a: {**op, "alsoKnownAs": ["\U0001f600" * 130]},
        "alsoKnownAs entry too long",
    ),
    ("astral-alias-fits", lambda op, a: {**op, "alsoKnownAs": ["\U0001f600" * 129]}, None),
    (
        "duplicate-alias",
        lambda op, a: {**op, "alsoKnownAs": ["at://a.test"] * 2},
        "duplicate alsoKnownAs",
    ),
    ("11-services", lambda op, a: {**op, "services": _services(11)}, "too many services"),
    ("10-services", lambda op, a: {**op, "services": _services(10)}, None),
    (
        "33-char-service-id",
        lambda op, a: {**op, "services": _services(1, name="s" * 32)},
        "service id too long",
    ),
    ("32-char-service-id", lambda op, a: {**op, "services": _services(1, name="s" * 31)}, None),
    (
        "257-char-type",
        lambda op, a: {**op, "services": _services(1, type_="T" * 257)},
        "type too long",
    ),
    ("256-char-type", lambda op, a: {**op, "services": _services(1, type_="T" * 256)}, None),
    (
        "513-char-endpoint",
        lambda op, a: {**op, "services": _services(1, endpoint="e" * 513)},
        "endpoint too long",
    ),
    ("512-char-endpoint", lambda op, a: {**op, "services": _services(1, endpoint="e" * 512)}, None),
    (
        "33-char-method-id",
        lambda op, a: {**op, "verificationMethods": {"m" * 33: _key()}},
        "verification method id too long",
    ),
    ("32-char-method-id", lambda op, a: {**op, "verificationMethods": {"m" * 32: _key()}}, None),
    (
        "257-char-method-key",
        lambda op, a: {**op, "verificationMethods": {"atproto": "did:key:z" + "2" * 248}},
        "key too long",
    ),
    (
        "256-char-method-key",
        lambda op, a: {**op, "verificationMethods": {"atproto": "did:key:z" + "2" * 247}},
        None,
    ),
]


@pytest.mark.parametrize("mutate,refusal", [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
async def test_genesis_limits(
    local: tuple[httpx.AsyncClient, Clock], mutate: Mutation, refusal: str | None
) -> None:
    client, _ = local
    account = Account()
    op = sign_operation(mutate(account.genesis(), account), account.rotation)
    did = did_for_genesis(op)
    response = await post_op(client, did, op)
    if refusal is None:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 400
    assert refusal in response.json()["message"]
    assert (await client.get(f"/{did}/log/audit")).status_code == 404


@pytest.mark.parametrize(
    "mutate,refusal", [s[1:] for s in SHAPES if s[2]], ids=[s[0] for s in SHAPES if s[2]]
)
async def test_update_limits(
    local: tuple[httpx.AsyncClient, Clock], mutate: Mutation, refusal: str
) -> None:
    """The same limits on an update; `rotationKeys: []` would lock the DID for good."""
    client, _ = local
    account = Account()
    did, genesis = await create_did(client, account)
    before = (await client.get(f"/{did}/log/audit")).text
    update = mutate(update_op(genesis, op_cid(genesis)), account)
    response = await post_op(client, did, sign_operation(update, account.rotation))
    assert response.status_code == 400
    assert refusal in response.json()["message"]
    assert (await client.get(f"/{did}/log/audit")).text == before


async def test_new_legacy_create_refused(local: tuple[httpx.AsyncClient, Clock]) -> None:
    client, _ = local
    signing, recovery = generate_k256(), generate_k256()
    create: Op = {
        "type": "create",
        "signingKey": signing.public_key().did_key(),
        "recoveryKey": recovery.public_key().did_key(),
        "handle": "legacy.test",
        "service": "https://pds.test",
        "prev": None,
    }
    signed = sign_operation(create, signing)
    did = did_for_genesis(signed)
    response = await post_op(client, did, signed)
    assert response.status_code == 400
    assert "legacy 'create'" in response.json()["message"]
    assert (await client.get(f"/{did}/log/audit")).status_code == 404


def _endpoint_length(deficit: int) -> int:
    """An endpoint length adding `deficit` bytes over an empty one, or as many as one can
    (a CBOR string header is 1 byte up to 23 characters, 2 up to 255, 3 beyond)."""
    if deficit <= 23:
        return deficit
    if deficit <= 256:
        return deficit - 1
    return min(512, deficit - 2) if deficit - 2 >= 256 else 255


def _sized(account: Account, size: int) -> Op:
    """A signed genesis of exactly `size` bytes of DAG-CBOR, padded with services."""
    op = account.genesis()
    services = {**op["services"], **_services(8, name="pad", endpoint="")}
    for name in list(services)[1:]:
        deficit = size - len(cbor.encode({**op, "services": services}))
        services[name] = {"type": "T", "endpoint": "e" * _endpoint_length(deficit)}
    sized = sign_operation({**op, "services": services}, account.rotation)
    assert len(cbor.encode(sized)) == size
    return sized


@pytest.fixture
async def spec_sized(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A directory configured to the spec's 7,500 bytes instead of the default 4,000."""
    app = create_app(PlcConfig(data_dir=tmp_path / "spec", max_op_bytes=7500))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://plc.test") as client:
            yield client


async def test_operation_size_limit(
    local: tuple[httpx.AsyncClient, Clock], spec_sized: httpx.AsyncClient
) -> None:
    client, _ = local
    fits, over = _sized(Account(), 4000), _sized(Account(), 4001)
    assert (await post_op(client, did_for_genesis(fits), fits)).status_code == 200
    response = await post_op(client, did_for_genesis(over), over)
    assert response.status_code == 400
    assert "4001 bytes of DAG-CBOR, over the 4000 limit" in response.json()["message"]
    assert (await client.get(f"/{did_for_genesis(over)}/log/audit")).status_code == 404
    assert (await post_op(spec_sized, did_for_genesis(over), over)).status_code == 200
    account = Account()
    genesis = account.genesis()
    large = {
        **genesis,
        "alsoKnownAs": [f"at://{i}" + "a" * 250 for i in range(10)],
        "services": _services(10, endpoint="e" * 512),
    }
    large = sign_operation(large, account.rotation)
    response = await post_op(spec_sized, did_for_genesis(large), large)
    assert response.status_code == 400
    assert "over the 7500 limit" in response.json()["message"]


async def _updates(
    client: httpx.AsyncClient,
    clock: Clock,
    account: Account,
    genesis: Op,
    count: int,
    spacing: timedelta,
) -> list[Op]:
    """`count` accepted updates of the DID, `spacing` apart; the log's operations, genesis first."""
    did, ops = did_for_genesis(genesis), [genesis]
    for i in range(count):
        clock.now += spacing
        op = sign_operation(
            update_op(ops[-1], op_cid(ops[-1]), handle=f"h{i}.test"), account.rotation
        )
        response = await post_op(client, did, op)
        assert response.status_code == 200, (i, response.text)
        ops.append(op)
    return ops


# The spacing keeps each shorter window under its own limit while the longer one fills up.
RATES = [
    ("hour", timedelta(hours=1), timedelta(minutes=1), 10),
    ("day", timedelta(days=1), timedelta(minutes=45), 30),
    ("week", timedelta(weeks=1), timedelta(minutes=100), 100),
]


@pytest.mark.parametrize("window,length,spacing,limit", RATES, ids=[r[0] for r in RATES])
async def test_rate_limit_per_did(
    local: tuple[httpx.AsyncClient, Clock],
    window: str,
    length: timedelta,
    spacing: timedelta,
    limit: int,
) -> None:
    """Fewer than `limit` operations in the window, then refused; recovery stays possible."""
    client, clock = local
    account = Account()
    did, genesis = await create_did(client, account)
    ops = await _updates(client, clock, account, genesis, limit - 1, spacing)
    clock.now += spacing
    extra = sign_operation(update_op(ops[-1], op_cid(ops[-1]), handle="x.test"), account.rotation)
    response = await post_op(client, did, extra)
    assert response.status_code == 400
    message = response.json()["message"]
    assert f"too many operations for this DID within the last {window} (max {limit})" in message
    assert len((await client.get(f"/{did}/log/audit")).json()) == limit
    # A recovery is not counted against: a weaker key cannot block it by spending the budget.
    recover = sign_operation(update_op(ops[-2], op_cid(ops[-2])), account.recovery)
    assert (await post_op(client, did, recover)).status_code == 200
    # Still `limit` live operations in the window until the genesis leaves it.
    fresh = sign_operation(update_op(recover, op_cid(recover), handle="y.test"), account.rotation)
    clock.now = T0 + length - timedelta(milliseconds=1)
    assert (await post_op(client, did, fresh)).status_code == 400
    clock.now = T0 + length
    assert (await post_op(client, did, fresh)).status_code == 200


async def test_rate_limit_can_be_disabled(tmp_path: Path) -> None:
    clock = Clock()
    config = PlcConfig(data_dir=tmp_path / "unlimited", rate_limits_enabled=False)
    app = create_app(config, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://plc.test") as client:
            account = Account()
            _, genesis = await create_did(client, account)
            ops = await _updates(client, clock, account, genesis, 20, timedelta(seconds=1))
            assert len(ops) == 21
