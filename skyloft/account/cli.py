"""`skyloft account migrate`: the command line of the account tools (spec-account.md).

Passwords never come from the command line (where other users of the machine can read them):
they are asked at the terminal or read from SKYLOFT_OLD_PASSWORD / SKYLOFT_NEW_PASSWORD.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Final

import httpx

from atcore.errors import IdentityError
from atcore.xrpc.client import XrpcClientError
from skyloft.account.blobs import BlobsMissing
from skyloft.account.migrate import Plan, migrate
from skyloft.account.person import MigrationError, MigrationPaused

DEFAULT_PLC: Final = "https://plc.directory"
HTTP_TIMEOUT: Final = 120.0
# Exit status when the migration waits for the person (a code, a published document).
PAUSED: Final = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = sub.add_parser("account", help="move an account to another PDS, keep a backup")
    commands = account.add_subparsers(dest="account_command", required=True)
    move = commands.add_parser("migrate", help="move an account to another PDS, keeping its DID")
    move.add_argument("--from", dest="source", required=True, metavar="HANDLE_OR_DID")
    move.add_argument("--to", dest="new_pds", required=True, metavar="URL", help="the new PDS")
    move.add_argument("--new-handle", help="the handle on the new PDS (default: the current)")
    move.add_argument("--email", help="the email on the new PDS (default: the current)")
    move.add_argument("--invite-code", help="an invite code of the new PDS")
    move.add_argument("--plc", help=f"PLC directory (SKYLOFT_PLC_URL; default {DEFAULT_PLC})")
    move.add_argument("--plc-token", help="the code the old PDS mailed for the PLC operation")
    move.add_argument("--relay", help="also check that this relay follows the new PDS")
    move.add_argument("--state", type=Path, help="the progress file (default: in the data dir)")
    move.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    move.set_defaults(run=run_migrate)


class TerminalPrompts:
    """Passwords from the environment or the terminal; the PLC code from --plc-token, the
    terminal, or one line of standard input when that is not a terminal."""

    def __init__(self) -> None:
        self._old: str | None = None

    def old_password(self) -> str:
        self._old = os.environ.get("SKYLOFT_OLD_PASSWORD") or getpass.getpass(
            "password on the old PDS: "
        )
        return self._old

    def new_password(self) -> str:
        given = os.environ.get("SKYLOFT_NEW_PASSWORD") or getpass.getpass(
            "password on the new PDS (empty: the same): "
        )
        return given or self._old or ""

    def plc_token(self) -> str | None:
        if sys.stdin.isatty():
            return input("code from the email: ").strip() or None
        line = sys.stdin.readline().strip()
        return line or None

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def run_migrate(args: argparse.Namespace) -> int:
    plan = Plan(
        source=args.source,
        new_pds=args.new_pds,
        plc_url=args.plc or os.environ.get("SKYLOFT_PLC_URL") or DEFAULT_PLC,
        new_handle=args.new_handle,
        email=args.email,
        invite_code=args.invite_code,
        plc_token=args.plc_token,
        relay_url=args.relay,
        state_path=args.state,
        dry_run=args.dry_run,
    )
    prompts = TerminalPrompts()
    try:
        asyncio.run(_migrate(plan, prompts))
    except MigrationPaused as exc:
        prompts.say(f"paused: {exc}")
        return PAUSED
    except (MigrationError, BlobsMissing, IdentityError, XrpcClientError, ValueError) as exc:
        prompts.say(f"error: {exc}")
        prompts.say("nothing is lost: run the same command again to continue")
        return 1
    if not plan.dry_run:
        prompts.say("migration complete")
    return 0


async def _migrate(plan: Plan, prompts: TerminalPrompts) -> None:
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        await migrate(plan, prompts, http)
