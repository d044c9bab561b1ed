"""`skyloft account migrate | rotation-key add | rotation-key undo | backup | verify-backup |
recover`: a person's own account tools (spec-account.md, guide-account-migration.md,
guide-account-recovery.md).

Passwords never come from the command line (where other users of the machine can read them):
they are asked at the terminal or read from SKYLOFT_OLD_PASSWORD / SKYLOFT_NEW_PASSWORD
(migrate; recover reads the new one) and SKYLOFT_PASSWORD (the others).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import httpx

from atcore.errors import IdentityError, MissingBlock
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.keys import private_key_from_hex
from atcore.xrpc.client import XrpcClientError, http_session
from skyloft.account.backup import Manifest, backup, load_manifest, verify_backup
from skyloft.account.blobs import BlobsMissing
from skyloft.account.migrate import Plan, migrate, resolve_account
from skyloft.account.person import MigrationError, MigrationPaused
from skyloft.account.recover import recover
from skyloft.account.rotation_key import add_rotation_key, undo_operations
from skyloft.account.session import Session

DEFAULT_PLC: Final = "https://plc.directory"
HTTP_TIMEOUT: Final = 120.0
# Exit status when a command waits for the person (a code, a published document).
PAUSED: Final = 3
# What a command reports as one line: the servers' answers, bad files, unreachable hosts.
FAILURES = (
    MigrationError,
    BlobsMissing,
    IdentityError,
    XrpcClientError,
    MissingBlock,
    ValueError,
    OSError,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = sub.add_parser("account", help="move an account to another PDS, keep a backup")
    commands = account.add_subparsers(dest="account_command", required=True)

    move = commands.add_parser("migrate", help="move an account to another PDS, keeping its DID")
    move.add_argument("--from", dest="source", required=True, metavar="HANDLE_OR_DID")
    move.add_argument("--to", dest="new_pds", required=True, metavar="URL", help="the new PDS")
    move.add_argument("--new-handle", help="the handle on the new PDS (default: the current)")
    move.add_argument("--email", help="the email on the new PDS (default: the current)")
    move.add_argument("--invite-code", help="an invite code of the new PDS")
    _plc_arguments(move)
    move.add_argument("--relay", help="also check that this relay follows the new PDS")
    move.add_argument("--state", type=Path, help="the progress file (default: in the data dir)")
    move.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    move.set_defaults(run=run_migrate)

    rotation = commands.add_parser("rotation-key", help="a rotation key you keep yourself")
    rotation_commands = rotation.add_subparsers(dest="rotation_command", required=True)
    add = rotation_commands.add_parser("add", help="create one and list it above the PDS's")
    add.add_argument("--account", required=True, metavar="HANDLE_OR_DID")
    add.add_argument("--out", required=True, type=Path, help="file for the private key (new)")
    _plc_arguments(add)
    add.set_defaults(run=run_rotation_key_add)
    undo = rotation_commands.add_parser(
        "undo", help="within 72 hours, nullify operations a server signed against your will"
    )
    undo.add_argument("--account", required=True, metavar="HANDLE_OR_DID")
    undo.add_argument("--rotation-key", required=True, type=Path, metavar="FILE")
    undo.add_argument("--count", type=int, default=1, help="how many last operations (1)")
    undo.add_argument("--plc", help=f"PLC directory (SKYLOFT_PLC_URL; default {DEFAULT_PLC})")
    undo.set_defaults(run=run_rotation_key_undo)

    keep = commands.add_parser("backup", help="a local, incremental copy of an account")
    keep.add_argument("--out", required=True, type=Path, metavar="DIR")
    keep.add_argument("--account", metavar="HANDLE_OR_DID", help="needed for a new backup")
    keep.add_argument("--plc", help=f"PLC directory (SKYLOFT_PLC_URL; default {DEFAULT_PLC})")
    keep.add_argument("--no-preferences", action="store_true", help="skip them (no password)")
    keep.set_defaults(run=run_backup)

    rescue = commands.add_parser(
        "recover", help="move to a new PDS without the old one: a backup and your rotation key"
    )
    rescue.add_argument("--backup", required=True, type=Path, metavar="DIR")
    rescue.add_argument("--rotation-key", required=True, type=Path, metavar="FILE")
    rescue.add_argument("--to", dest="new_pds", required=True, metavar="URL", help="the new PDS")
    rescue.add_argument("--new-handle", help="the handle on the new PDS (default: the current)")
    rescue.add_argument("--email", required=True, help="the email on the new PDS")
    rescue.add_argument("--invite-code", help="an invite code of the new PDS")
    rescue.add_argument("--plc", help=f"PLC directory (SKYLOFT_PLC_URL; default {DEFAULT_PLC})")
    rescue.set_defaults(run=run_recover)

    check = commands.add_parser("verify-backup", help="check a backup made by `backup`")
    check.add_argument("dir", type=Path)
    check.set_defaults(run=run_verify_backup)


def _plc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plc", help=f"PLC directory (SKYLOFT_PLC_URL; default {DEFAULT_PLC})")
    parser.add_argument("--plc-token", help="the code the PDS mailed for the PLC operation")


def _plc_url(args: argparse.Namespace) -> str:
    return str(args.plc or os.environ.get("SKYLOFT_PLC_URL") or DEFAULT_PLC)


def _password(variable: str, prompt: str) -> str:
    return os.environ.get(variable) or getpass.getpass(prompt)


class TerminalPrompts:
    """Passwords from the environment or the terminal; the PLC code from the terminal, or one
    line of standard input when that is not a terminal (so scripts can drive it)."""

    def __init__(self) -> None:
        self._old: str | None = None

    def old_password(self) -> str:
        self._old = _password("SKYLOFT_OLD_PASSWORD", "password on the old PDS: ")
        return self._old

    def new_password(self) -> str:
        given = _password("SKYLOFT_NEW_PASSWORD", "password on the new PDS (empty: the same): ")
        return given or self._old or ""

    def plc_token(self) -> str | None:
        if sys.stdin.isatty():
            return input("code from the email: ").strip() or None
        return sys.stdin.readline().strip() or None

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Clients:
    """`web` resolves identities and talks to the PLC; `pds` carries the XRPC calls."""

    web: httpx.AsyncClient
    pds: aiohttp.ClientSession


def _run(work: Callable[[Clients], Awaitable[None]]) -> int:
    """Run `work` with HTTP clients; a failure is one line on stderr and status 1."""

    async def main() -> None:
        async with (
            httpx.AsyncClient(timeout=HTTP_TIMEOUT) as web,
            http_session(trust_env=True) as pds,
        ):
            await work(Clients(web, pds))

    try:
        asyncio.run(main())
    except MigrationPaused as exc:
        print(f"paused: {exc}", file=sys.stderr)
        return PAUSED
    except FAILURES as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    plan = Plan(
        source=args.source,
        new_pds=args.new_pds,
        plc_url=_plc_url(args),
        new_handle=args.new_handle,
        email=args.email,
        invite_code=args.invite_code,
        plc_token=args.plc_token,
        relay_url=args.relay,
        state_path=args.state,
        dry_run=args.dry_run,
    )

    async def work(http: Clients) -> None:
        await migrate(plan, TerminalPrompts(), http.web, http.pds)

    status = _run(work)
    if status == 1:
        print("nothing is lost: run the same command again to continue", file=sys.stderr)
    elif status == 0 and not plan.dry_run:
        print("migration complete", file=sys.stderr)
    return status


async def _login(http: Clients, plc_url: str, account: str) -> tuple[str, Session]:
    """The account's DID, and a session on the PDS its DID document names."""
    resolver = IdentityResolver(plc_url, http.web, allow_private=True)
    did = await resolve_account(resolver, account)
    pds = Session((await resolver.resolve_did(did)).require_pds_endpoint(), http.pds)
    await pds.login(did, _password("SKYLOFT_PASSWORD", "password: "))
    return did, pds


def run_rotation_key_add(args: argparse.Namespace) -> int:
    async def work(http: Clients) -> None:
        if args.out.exists():
            raise MigrationError(f"{args.out} exists already: name a new file for the key")
        plc_url = _plc_url(args)
        did, pds = await _login(http, plc_url, args.account)
        plc = PlcClient(plc_url, http.web)
        key = await add_rotation_key(pds, plc, did, args.out, args.plc_token, TerminalPrompts())
        print(f"private key (hex, shown once; also in {args.out}): {key.hex()}")
        print(f"rotation key {key.public_key().did_key()} now comes first for {did}")

    return _run(work)


def run_rotation_key_undo(args: argparse.Namespace) -> int:
    async def work(http: Clients) -> None:
        key = private_key_from_hex("k256", args.rotation_key.read_text().strip())
        plc_url = _plc_url(args)
        resolver = IdentityResolver(plc_url, http.web, allow_private=True)
        did = await resolve_account(resolver, args.account)
        for cid in await undo_operations(PlcClient(plc_url, http.web), did, key, args.count):
            print(f"undone: {cid}")

    return _run(work)


def run_backup(args: argparse.Namespace) -> int:
    async def work(http: Clients) -> None:
        manifest = load_manifest(args.out)
        account = args.account or (manifest.did if manifest else None)
        if account is None:
            raise MigrationError(f"{args.out} holds no backup yet: name the --account")
        resolver = IdentityResolver(_plc_url(args), http.web, allow_private=True)
        did = await resolve_account(resolver, account)
        if manifest is not None and manifest.did != did:
            raise MigrationError(f"{args.out} is a backup of {manifest.did}, not of {did}")
        doc = await resolver.resolve_did(did)
        key = doc.require_signing_key().did_key()
        if manifest is None:
            manifest = Manifest(did, doc.require_pds_endpoint(), key)
        manifest.pds, manifest.signing_key = doc.require_pds_endpoint(), key
        pds = Session(manifest.pds, http.pds)
        if not args.no_preferences:
            await pds.login(did, _password("SKYLOFT_PASSWORD", "password: "))
        size, blobs = await backup(pds, manifest, args.out, not args.no_preferences)
        print(f"backup of {did} at rev {manifest.rev}: {size} new repository bytes", end="")
        print(f", {blobs} new blobs")

    return _run(work)


def run_recover(args: argparse.Namespace) -> int:
    async def work(http: Clients) -> None:
        key = private_key_from_hex("k256", args.rotation_key.read_text().strip())
        plc_url = _plc_url(args)
        resolver = IdentityResolver(plc_url, http.web, allow_private=True)
        new = Session(args.new_pds, http.pds)
        password = _password("SKYLOFT_NEW_PASSWORD", "password on the new PDS: ")
        account = {"handle": args.new_handle, "email": args.email, "inviteCode": args.invite_code}
        did = await recover(
            args.backup, key, new, PlcClient(plc_url, http.web), resolver, password, account
        )
        print(f"recovered {did} onto {args.new_pds}")

    return _run(work)


def run_verify_backup(args: argparse.Namespace) -> int:
    async def work(_: Clients) -> None:
        report = verify_backup(args.dir)
        print(
            f"valid: {report.did} rev {report.rev}, {report.records} records, {report.blobs} blobs"
        )

    return _run(work)
