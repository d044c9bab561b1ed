"""Helpers for the directory's tests: an injectable clock, a DID's keys, submitting operations."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from atcore.identity.plc import Op, did_for_genesis, genesis_op, sign_operation
from atcore.keys import PrivateKey, generate_k256, generate_p256

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Account:
    """A DID whose rotation keys are [recovery (strongest), rotation]."""

    recovery: PrivateKey = field(default_factory=generate_k256)
    rotation: PrivateKey = field(default_factory=generate_p256)
    signing: PrivateKey = field(default_factory=generate_k256)

    def genesis(self, handle: str = "alice.test") -> Op:
        op = genesis_op(
            signing_key=self.signing.public_key().did_key(),
            rotation_keys=[k.public_key().did_key() for k in (self.recovery, self.rotation)],
            handle=handle,
            pds="https://pds.alice.test",
        )
        return sign_operation(op, self.rotation)


async def post_op(client: httpx.AsyncClient, did: str, op: Any) -> httpx.Response:
    return await client.post(f"/{did}", content=json.dumps(op))


async def create_did(client: httpx.AsyncClient, account: Account) -> tuple[str, Op]:
    genesis = account.genesis()
    did = did_for_genesis(genesis)
    response = await post_op(client, did, genesis)
    assert response.status_code == 200, response.text
    return did, genesis
