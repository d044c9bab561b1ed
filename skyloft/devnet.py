"""`skyloft devnet`: a local network in one process tree — a PLC directory and a PDS in dev
mode, with a demo account whose credentials are printed (DESIGN.md, "Running the services").

Data lives under `--data-dir` (default `data/devnet`), so a restart keeps accounts; the demo
account's password is generated once and kept there. Stops both services on SIGTERM/Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from skyloft.services import ServiceProcess


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    devnet = sub.add_parser("devnet", help="run a local PLC + PDS in dev mode with a demo account")
    devnet.add_argument("--data-dir", type=Path, default=Path("data/devnet"))
    devnet.add_argument("--handle", default="demo.test", help="the demo account's handle")
    # Fixed ports by default: the DID documents registered at the PLC name the PDS's URL.
    devnet.add_argument("--plc-port", type=int, default=2582)
    devnet.add_argument("--pds-port", type=int, default=2583)
    devnet.set_defaults(run=run)


def demo_account(pds_url: str, handle: str, secrets_file: Path) -> dict[str, Any]:
    """Create the demo account on first start (password kept in `secrets_file`), else log in."""
    if secrets_file.exists():
        saved: dict[str, Any] = json.loads(secrets_file.read_text())
        login = {"identifier": saved["handle"], "password": saved["password"]}
        response = httpx.post(f"{pds_url}/xrpc/com.atproto.server.createSession", json=login)
    else:
        saved = {"handle": handle, "password": secrets.token_urlsafe(12)}
        account = {**saved, "email": f"{handle.split('.')[0]}@example.test"}
        response = httpx.post(f"{pds_url}/xrpc/com.atproto.server.createAccount", json=account)
    response.raise_for_status()
    saved["did"] = response.json()["did"]
    secrets_file.write_text(json.dumps(saved))
    secrets_file.chmod(0o600)
    return saved


def run(args: argparse.Namespace) -> int:
    root: Path = args.data_dir
    root.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    services: list[ServiceProcess] = []
    try:
        plc = ServiceProcess("plc", root / "plc", port=args.plc_port, log_path=root / "plc.log")
        services.append(plc)
        pds_env = {"PDS_DEV_MODE": "true", "PDS_DID_PLC_URL": plc.url}
        pds = ServiceProcess(
            "pds", root / "pds", port=args.pds_port, env=pds_env, log_path=root / "pds.log"
        )
        services.append(pds)
        account = demo_account(pds.url, args.handle, root / "demo-account.json")
        print(f"plc      {plc.url}  (log {plc.log_path})")
        print(f"pds      {pds.url}  (log {pds.log_path})")
        print(f"account  {account['handle']}  {account['did']}")
        print(f"password {account['password']}")
        print(f"try      from atproto import Client; c = Client(base_url='{pds.url}'); ", end="")
        print(f"c.login('{account['handle']}', '{account['password']}', fetch_bsky_profile=False)")
        print("ready; Ctrl-C stops the network", flush=True)
        stop.wait()
    except (OSError, httpx.HTTPError, RuntimeError) as exc:
        print(f"skyloft devnet: {exc}", file=sys.stderr)
        return 1
    finally:
        for service in reversed(services):
            service.stop()
    return 0
