"""Proxying to an appview stand-in on a real port: service-auth JWTs verified against the
caller's DID document, bodies and headers passed through, errors mapped, atproto-proxy
headers resolved through a service DID at our PLC, privileged methods, private targets."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpcore
import pytest

from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.identity.plc import did_for_genesis, genesis_op, sign_operation
from atcore.keys import generate_k256
from pds.config import PdsConfig
from tests.atcore.identity.support import Internet, Rebinding
from tests.pds.appview_standin import StandIn, appview_standin
from tests.pds.conftest import PASSWORD, Pds, serve_in_process
from tests.pds.test_server_accounts import error_of


@pytest.fixture
def standin(plc_url: str) -> Iterator[StandIn]:
    with appview_standin(plc_url) as running:
        yield running


@pytest.fixture
async def proxying(pds_config: PdsConfig, standin: StandIn) -> AsyncIterator[Pds]:
    config = dataclasses.replace(pds_config, appview_url=standin.url, appview_did=standin.did)
    async for pds in serve_in_process(config):
        yield pds


async def service_did(pds: Pds, service: str, endpoint: str) -> str:
    """A did:plc at our PLC naming `endpoint` as its `#service` (like a chat service's DID)."""
    key = generate_k256()
    op = genesis_op(
        signing_key=key.public_key().did_key(),
        rotation_keys=[key.public_key().did_key()],
        handle="service.test",
        pds=endpoint,
    )
    op["services"][service] = {"type": "BskyChatService", "endpoint": endpoint}
    signed = sign_operation(op, key)
    did = did_for_genesis(signed)
    await pds.ctx.plc.submit(did, signed)
    return did


async def test_appview_calls_carry_verified_service_auth(proxying: Pds, standin: StandIn) -> None:
    pds = proxying
    account = await pds.create_account("paul.test")
    token = account["accessJwt"]
    response = await pds.call(
        "app.bsky.actor.getProfile", params={"actor": "paul.test"}, token=token
    )
    assert response.status_code == 200, response.text
    assert response.json()["did"] == account["did"]
    assert response.headers["atproto-repo-rev"] == "3kabc"
    assert response.headers["content-language"] == "en"
    seen = standin.seen[-1]
    assert seen.verified and seen.claims is not None
    assert (seen.claims["iss"], seen.claims["aud"]) == (account["did"], standin.did)
    assert seen.claims["lxm"] == "app.bsky.actor.getProfile"

    body = {"actor": "did:plc:abcdefghijklmnopqrstuvwx"}
    posted = await pds.call("app.bsky.graph.muteActor", body, token=token)
    assert posted.status_code == 200
    assert posted.json()["echo"] == '{"actor":"did:plc:abcdefghijklmnopqrstuvwx"}'
    assert standin.seen[-1].verified

    # Anonymous calls are refused before anything is forwarded, as by the reference PDS.
    calls = len(standin.seen)
    anon = await pds.call("app.bsky.feed.getFeedGenerator", params={"feed": "at://x/y/z"})
    assert anon.status_code == 401 and anon.json()["error"] == "AuthMissing"
    anon = await pds.call("app.bsky.graph.muteActor", body)
    assert anon.status_code == 401 and anon.json()["error"] == "AuthMissing"
    assert len(standin.seen) == calls


async def test_upstream_errors_are_passed_on(proxying: Pds) -> None:
    account = await proxying.create_account("quin.test")
    token = account["accessJwt"]
    nsid = "app.bsky.feed.getTimeline"
    bad = await proxying.call(nsid, params={"cursor": "bad"}, token=token)
    assert error_of(bad) == (400, "BadCursor") and bad.json()["message"] == "no"
    boom = await proxying.call(nsid, params={"cursor": "boom"}, token=token)
    assert error_of(boom) == (502, "Oops")
    lone = await proxying.call(nsid, params={"cursor": "lone"}, token=token)
    assert error_of(lone) == (400, "InvalidRequest")
    # No service configured for it: 400, as the reference PDS answers (never a 5xx).
    unknown = await proxying.call("com.example.nothing", token=token)
    assert error_of(unknown) == (400, "InvalidRequest")
    assert unknown.json()["message"] == "No service configured for com.example.nothing"


async def test_atproto_proxy_header_and_privileged_methods(proxying: Pds, standin: StandIn) -> None:
    pds = proxying
    chat = await service_did(pds, "bsky_chat", standin.url)
    standin.also.add(chat)
    account = await pds.create_account("rosa.test")
    full = account["accessJwt"]
    header = {"atproto-proxy": f"{chat}#bsky_chat", "authorization": f"Bearer {full}"}
    nsid = "/xrpc/chat.bsky.convo.listConvos"
    response = await pds.client.get(nsid, headers=header)
    assert response.status_code == 200, response.text
    seen = standin.seen[-1]
    assert seen.verified and seen.claims is not None
    assert seen.claims["aud"] == f"{chat}#bsky_chat"

    made = await pds.call("com.atproto.server.createAppPassword", {"name": "plain"}, token=full)
    login = {"identifier": "rosa.test", "password": made.json()["password"]}
    plain = (await pds.call("com.atproto.server.createSession", login)).json()["accessJwt"]
    refused = await pds.client.get(nsid, headers={**header, "authorization": f"Bearer {plain}"})
    assert error_of(refused) == (400, "InvalidToken")

    for bad in (f"{chat}", "#bsky_chat", f"{chat}#nope", "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa#x"):
        wrong = await pds.client.get(nsid, headers={**header, "atproto-proxy": bad})
        assert error_of(wrong) == (400, "InvalidRequest"), bad


async def test_private_targets_are_refused_outside_dev_mode(
    pds_config: PdsConfig, standin: StandIn
) -> None:
    config = dataclasses.replace(pds_config, appview_url=standin.url, appview_did=standin.did)
    async for pds in serve_in_process(config):
        account = await pds.create_account("sam.test")
        header = {"authorization": f"Bearer {account['accessJwt']}"}
        port = urlsplit(standin.url).port
        for endpoint in (standin.url, f"http://localhost:{port}"):
            chat = await service_did(pds, "bsky_chat", endpoint)
            header["atproto-proxy"] = f"{chat}#bsky_chat"
            async with swap_guard(pds, AddressGuard()):
                refused = await pds.client.get("/xrpc/chat.bsky.convo.listConvos", headers=header)
            assert error_of(refused) == (400, "InvalidRequest")
            assert "refused" in refused.json()["message"]
        assert standin.seen == []


async def test_get_feed_token_names_the_generator_from_the_appview_record(
    proxying: Pds, standin: StandIn
) -> None:
    pds = proxying
    account = await pds.create_account("fern.test")
    token = account["accessJwt"]
    feed = f"at://{account['did']}/app.bsky.feed.generator/"
    response = await pds.call("app.bsky.feed.getFeed", params={"feed": feed + "gen"}, token=token)
    assert response.status_code == 200, response.text
    seen = standin.seen[-1]
    assert seen.nsid == "app.bsky.feed.getFeed" and seen.claims is not None
    assert (seen.claims["aud"], seen.claims["lxm"]) == (
        "did:web:gen.test",
        "app.bsky.feed.getFeedSkeleton",
    )
    missing = await pds.call("app.bsky.feed.getFeed", params={"feed": feed + "none"}, token=token)
    assert error_of(missing) == (400, "UnknownFeed")
    # Over the 256 KiB bound on a record: the appview failed us, not the feed.
    huge = await pds.call("app.bsky.feed.getFeed", params={"feed": feed + "huge"}, token=token)
    assert error_of(huge) == (502, "UpstreamFailure")


async def test_proxy_target_rebinding_never_reaches_loopback(
    pds_config: PdsConfig, standin: StandIn
) -> None:
    """The service's name answers a public address, then loopback (where the stand-in is):
    the proxy connects to the public address it checked and never to the stand-in."""
    config = dataclasses.replace(pds_config, appview_url=standin.url, appview_did=standin.did)
    async for pds in serve_in_process(config):
        account = await pds.create_account("tess.test")
        port = urlsplit(standin.url).port
        assert port is not None
        chat = await service_did(pds, "bsky_chat", f"http://chat.rebind.example:{port}")
        dns = Rebinding(["93.184.216.34"], ["127.0.0.1"])
        internet = Internet(port, reachable={"127.0.0.1"})
        async with swap_guard(pds, AddressGuard(lookup=dns), internet):
            header = {
                "atproto-proxy": f"{chat}#bsky_chat",
                "authorization": f"Bearer {account['accessJwt']}",
            }
            response = await pds.client.get("/xrpc/chat.bsky.convo.listConvos", headers=header)
        assert error_of(response) == (502, "UpstreamFailure")
        assert internet.connects == [("93.184.216.34", port)] and dns.calls == 1
        assert standin.seen == []


@asynccontextmanager
async def swap_guard(
    pds: Pds, guard: AddressGuard, network: httpcore.AsyncNetworkBackend | None = None
) -> AsyncIterator[None]:
    """Run with the PDS's guarded client replaced by one under `guard` (as in production)."""
    original = pds.ctx.guarded_http
    async with guarded_client(guard, network=network) as client:
        object.__setattr__(pds.ctx, "guarded_http", client)
        try:
            yield
        finally:
            object.__setattr__(pds.ctx, "guarded_http", original)


@pytest.fixture
async def reporting(pds_config: PdsConfig, standin: StandIn) -> AsyncIterator[Pds]:
    """A PDS whose appview and moderation (report) service are both the stand-in."""
    config = dataclasses.replace(
        pds_config,
        appview_url=standin.url,
        appview_did=standin.did,
        report_service_url=standin.url,
        report_service_did=standin.did,
    )
    async for pds in serve_in_process(config):
        yield pds


async def test_a_taken_down_user_may_appeal_and_nothing_else(
    reporting: Pds, standin: StandIn
) -> None:
    pds = reporting
    account = await pds.create_account("tina.test")
    did = account["did"]
    await pds.ctx.accounts.set_takedown(did, "abuse")
    login = {"identifier": did, "password": PASSWORD, "allowTakendown": True}
    token = (await pds.call("com.atproto.server.createSession", login)).json()["accessJwt"]
    report = {
        "reasonType": "com.atproto.moderation.defs#reasonAppeal",
        "subject": {"$type": "com.atproto.admin.defs#repoRef", "did": did},
    }
    appeal = await pds.call("com.atproto.moderation.createReport", report, token=token)
    assert appeal.status_code == 200, appeal.text
    seen = standin.seen[-1]
    assert seen.verified and seen.claims is not None and seen.claims["iss"] == did
    profile = await pds.call("app.bsky.actor.getProfile", params={"actor": did}, token=token)
    assert error_of(profile) == (400, "InvalidToken")
