"""PlcClient and IdentityResolver against our own PLC directory app, served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from atcore.errors import DidDeactivated, DidNotFound, PlcRequestError
from atcore.identity.plc import (
    did_for_genesis,
    genesis_op,
    op_cid,
    sign_operation,
    tombstone_op,
    update_op,
)
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.keys import generate_k256, generate_p256
from plc.app import create_app
from plc.config import PlcConfig
from tests.atcore.identity.support import OTHER_DID, fixed_lookup

PLC_URL = "http://plc.test"


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(PlcConfig(data_dir=tmp_path))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            yield client


async def test_account_lifecycle(directory: httpx.AsyncClient) -> None:
    rotation, signing = generate_k256(), generate_p256()
    genesis = sign_operation(
        genesis_op(
            signing_key=signing.public_key().did_key(),
            rotation_keys=[rotation.public_key().did_key()],
            handle="alice.test",
            pds="https://pds.test",
        ),
        rotation,
    )
    did = did_for_genesis(genesis)
    client = PlcClient(PLC_URL, directory)
    resolver = IdentityResolver(PLC_URL, directory, txt_lookup=fixed_lookup())

    with pytest.raises(DidNotFound):
        await resolver.resolve_did(did)
    await client.submit(did, genesis)
    doc = await resolver.resolve_did(did)
    assert doc.handle == "alice.test"
    assert doc.pds_endpoint == "https://pds.test"
    assert doc.require_signing_key().did_key() == signing.public_key().did_key()
    assert await client.get_last_op(did) == genesis

    update = sign_operation(update_op(genesis, op_cid(genesis), handle="bob.test"), rotation)
    await client.submit(did, update)
    assert (await resolver.resolve_did(did)).handle == "alice.test"  # cached until refreshed
    assert (await resolver.refresh(did)).handle == "bob.test"
    assert [entry["operation"] for entry in await client.get_audit_log(did)] == [genesis, update]
    assert (await client.get_document_data(did))["alsoKnownAs"] == ["at://bob.test"]

    forged = sign_operation(update_op(update, op_cid(update), handle="eve.test"), generate_k256())
    with pytest.raises(PlcRequestError) as failure:
        await client.submit(did, forged)
    assert failure.value.status == 400 and failure.value.message

    await client.submit(did, sign_operation(tombstone_op(op_cid(update)), rotation))
    with pytest.raises(DidDeactivated):
        await resolver.refresh(did)
    with pytest.raises(DidNotFound):
        await client.get_last_op(OTHER_DID)
