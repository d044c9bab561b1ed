"""`skyloft devnet`: a local network in one process tree — a PLC directory, two PDSes in dev
mode, a relay crawling both, an appview indexing the relay (every PDS's appview), the
Jetstream-compatible stream of the relay and the example keyword feed (feedgen.examples.hashtag,
reading that stream, published by the first demo account), with a demo account on each PDS
whose credentials are printed (DESIGN.md, "Running the services").

Data lives under `--data-dir` (default `data/devnet`), so a restart keeps accounts; each demo
account's password is generated once and kept there. Stops everything on SIGTERM/Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from atcore.xrpc.client import XrpcClient, XrpcClientError, http_session
from feedgen.app import load_feed
from feedgen.publish import Owner, PublishError, publish
from skyloft.services import ServiceProcess

DEMO_HANDLES = ("alice.test", "bob.test")
EXAMPLE_FEED = "feedgen.examples.hashtag"
TIMEOUT = 30.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    devnet = sub.add_parser(
        "devnet",
        help="run a local PLC, two PDSes, a relay, an appview, a stream and a feed in dev mode",
    )
    devnet.add_argument("--data-dir", type=Path, default=Path("data/devnet"))
    # Fixed ports by default: the DID documents registered at the PLC name each PDS's URL.
    # Port 0 everywhere picks free ports (tests), at the price of a fresh network per start.
    devnet.add_argument("--plc-port", type=int, default=2582)
    devnet.add_argument("--pds-ports", type=int, nargs=2, default=[2583, 2585])
    devnet.add_argument("--relay-port", type=int, default=2470)
    devnet.add_argument("--appview-port", type=int, default=2584)
    devnet.add_argument("--jetstream-port", type=int, default=6008)
    devnet.add_argument("--feedgen-port", type=int, default=3000)
    devnet.set_defaults(run=run)


def demo_account(pds_url: str, appview_url: str, handle: str, secrets_file: Path) -> dict[str, Any]:
    """The demo account, created on first start (password kept in `secrets_file`), else logged
    into; returned once the appview has indexed it, so the SDK's plain login finds its profile."""
    return asyncio.run(_demo_account(pds_url, appview_url, handle, secrets_file))


async def _demo_account(
    pds_url: str, appview_url: str, handle: str, secrets_file: Path
) -> dict[str, Any]:
    async with http_session(connections=2) as http:
        pds = XrpcClient(pds_url, http, timeout=TIMEOUT)
        if secrets_file.exists():
            saved: dict[str, Any] = json.loads(secrets_file.read_text())
            login = {"identifier": saved["handle"], "password": saved["password"]}
            session = await pds.procedure("com.atproto.server.createSession", login)
        else:
            saved = {"handle": handle, "password": secrets.token_urlsafe(12)}
            account = {**saved, "email": f"{handle.split('.')[0]}@example.test"}
            session = await pds.procedure("com.atproto.server.createAccount", account)
        saved["did"] = session["did"]
        secrets_file.write_text(json.dumps(saved))
        secrets_file.chmod(0o600)
        await _wait_for_profile(XrpcClient(appview_url, http, timeout=TIMEOUT), saved["did"])
    return saved


async def _wait_for_profile(appview: XrpcClient, did: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await appview.query("app.bsky.actor.getProfile", {"actor": did})
            return
        except XrpcClientError as exc:
            if exc.status == 0:  # the appview is not answering at all
                raise
        if time.monotonic() > deadline:
            raise RuntimeError(f"the appview did not index {did} within {timeout:.0f} s")
        await asyncio.sleep(0.1)


def start_network(args: argparse.Namespace, services: list[ServiceProcess]) -> None:
    """Start every service (appending each to `services` as it comes up) and print the map."""
    root: Path = args.data_dir

    def start(name: str, kind: str, port: int, env: dict[str, str], *args: str) -> ServiceProcess:
        process = ServiceProcess(
            kind, root / name, *args, port=port, env=env, log_path=root / f"{name}.log"
        )
        services.append(process)
        return process

    plc = start("plc", "plc", args.plc_port, {})
    relay_env = {"RELAY_DEV_MODE": "true", "RELAY_PLC_HOST": plc.url}
    relay = start("relay", "relay", args.relay_port, relay_env)
    print(f"plc      {plc.url}")
    print(f"relay    {relay.url}  (firehose {relay.url.replace('http', 'ws', 1)}", end="")
    print("/xrpc/com.atproto.sync.subscribeRepos)")
    appview_env = {
        "BSKY_DEV_MODE": "true",
        "BSKY_DID_PLC_URL": plc.url,
        "BSKY_REPO_PROVIDER": relay.url,
    }
    appview = start("appview", "appview", args.appview_port, appview_env)
    appview_did = httpx.get(f"{appview.url}/.well-known/did.json").json()["id"]
    print(f"appview  {appview.url}  ({appview_did})")
    for index, (port, handle) in enumerate(zip(args.pds_ports, DEMO_HANDLES, strict=True)):
        name = f"pds{index + 1}"
        pds_env = {
            "PDS_DEV_MODE": "true",
            "PDS_DID_PLC_URL": plc.url,
            "PDS_CRAWLERS": relay.url,
            "PDS_BSKY_APP_VIEW_URL": appview.url,
            "PDS_BSKY_APP_VIEW_DID": appview_did,
        }
        pds = start(name, "pds", port, pds_env)
        account = demo_account(pds.url, appview.url, handle, root / f"{name}-account.json")
        print(f"{name}     {pds.url}")
        print(f"  account  {account['handle']}  {account['did']}  password {account['password']}")
    firehose = f"{relay.url.replace('http', 'ws', 1)}/xrpc/com.atproto.sync.subscribeRepos"
    jetstream_env = {
        "JETSTREAM_WS_URL": firehose,
        "JETSTREAM_PLC_URL": plc.url,
        "JETSTREAM_DEV_MODE": "true",
    }
    jetstream = start("jetstream", "jetstream", args.jetstream_port, jetstream_env)
    print(f"stream   {jetstream.url.replace('http', 'ws', 1)}/subscribe")
    first = json.loads((root / "pds1-account.json").read_text())
    pds1 = services[3].url
    feedgen_env = {
        "FEEDGEN_DEV_MODE": "true",
        "FEEDGEN_PLC_URL": plc.url,
        "FEEDGEN_JETSTREAM_URL": f"{jetstream.url.replace('http', 'ws', 1)}/subscribe",
        "FEEDGEN_PUBLISHER_DID": first["did"],
    }
    feedgen = start("feedgen", "feedgen", args.feedgen_port, feedgen_env, EXAMPLE_FEED)
    feedgen_did = httpx.get(f"{feedgen.url}/.well-known/did.json").json()["id"]
    owner = Owner(pds1, first["handle"], first["password"])
    feed_uri = publish(owner, load_feed(EXAMPLE_FEED), feedgen_did)
    print(f"feed     {feed_uri}  (served by {feedgen.url}, {feedgen_did})")
    print(f"try      from atproto import Client; c = Client(base_url='{pds1}'); ", end="")
    print(f"c.login('{first['handle']}', '{first['password']}')")
    print(f"logs     {root}/*.log")


def run(args: argparse.Namespace) -> int:
    args.data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    services: list[ServiceProcess] = []
    try:
        start_network(args, services)
        print("ready; Ctrl-C stops the network", flush=True)
        stop.wait()
    except (OSError, httpx.HTTPError, XrpcClientError, RuntimeError, PublishError) as exc:
        print(f"skyloft devnet: {exc}", file=sys.stderr)
        return 1
    finally:
        # All at once, so no PDS waits out its grace period for the relay's open subscription.
        for service in services:
            service.terminate()
        for service in services:
            service.stop()
    return 0
