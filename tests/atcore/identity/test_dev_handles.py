"""Dev-mode handle verification at the account's PDS, against a real PLC and a real PDS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atcore.errors import HandleNotFound
from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.identity.resolver import IdentityResolver, PdsForHandle
from atcore.syntax.handle import Handle
from tests.atcore.identity.support import fixed_lookup
from tests.servers import running_service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(PLC URL, PDS URL): `skyloft plc serve` and a dev-mode `skyloft pds serve` using it."""
    root = tmp_path_factory.mktemp("devnet")
    with running_service("plc", root / "plc") as plc:
        env = {"PDS_DEV_MODE": "true", "PDS_HOSTNAME": "localhost", "PDS_DID_PLC_URL": plc}
        with running_service("pds", root / "pds", env=env) as pds:
            yield plc, pds


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The resolver's two clients in one: the devnet's PLC and PDSes are all on loopback."""
    async with guarded_client(AddressGuard(allow_private=True)) as client:
        yield client


async def create_account(http: httpx.AsyncClient, pds: str, handle: str) -> str:
    body = {"handle": handle, "email": f"{handle}@example.com", "password": "hunter2 hunter2"}
    response = await http.post(f"{pds}/xrpc/com.atproto.server.createAccount", json=body)
    assert response.status_code == 200, response.text
    did: str = response.json()["did"]
    return did


def resolver(plc: str, http: httpx.AsyncClient, **options: Any) -> IdentityResolver:
    # No DNS answers: the `.test` names exist only at the PDS, as on a devnet.
    return IdentityResolver(
        plc, http, guarded_http=http, allow_private=True, txt_lookup=fixed_lookup(), **options
    )


def the_pds(pds: str, asked: list[Handle]) -> PdsForHandle:
    async def lookup(handle: Handle) -> str | None:
        asked.append(handle)
        return pds

    return lookup


async def test_claimed_handle_is_verified_at_the_documents_pds(
    network: tuple[str, str], http: httpx.AsyncClient
) -> None:
    plc, pds = network
    did = await create_account(http, pds, "dana.test")
    asked: list[Handle] = []
    identity = await resolver(plc, http, dev_handle_pds=the_pds(pds, asked)).resolve_identity(did)
    assert identity.handle == "dana.test" and identity.display_handle == "dana.test"
    assert asked == [], "the DID document names the PDS; the lookup is for bare handles"

    plain = await resolver(plc, http).resolve_identity(did)
    assert plain.handle is None and plain.display_handle == "handle.invalid"


async def test_bare_handle_is_asked_at_the_pds_the_lookup_names(
    network: tuple[str, str], http: httpx.AsyncClient
) -> None:
    plc, pds = network
    did = await create_account(http, pds, "emil.test")
    asked: list[Handle] = []
    dev = resolver(plc, http, dev_handle_pds=the_pds(pds, asked))
    assert await dev.resolve_handle("Emil.test") == did
    identity = await dev.resolve_identity("emil.test")
    assert identity.did == did and identity.handle == "emil.test"
    assert asked == ["emil.test"], "the second lookup comes from the cache"

    with pytest.raises(HandleNotFound):
        await dev.resolve_identity("nobody-here.test")
    assert await resolver(plc, http).resolve_handle("emil.test") is None


async def test_a_pds_not_hosting_the_handle_does_not_verify_it(
    network: tuple[str, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    plc, pds = network
    did = await create_account(http, pds, "fern.test")
    env = {"PDS_DEV_MODE": "true", "PDS_HOSTNAME": "localhost", "PDS_DID_PLC_URL": plc}
    with running_service("pds", tmp_path / "other", env=env) as other:
        dev = resolver(plc, http, dev_handle_pds=the_pds(other, []))
        assert await dev.resolve_handle("fern.test") is None
        identity = await dev.resolve_identity(did)  # its own PDS still verifies it
        assert identity.handle == "fern.test"


async def test_the_fallback_is_development_only(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="allow_private"):
        IdentityResolver(
            "http://127.0.0.1:1", http, guarded_http=http, dev_handle_pds=the_pds("http://x", [])
        )
