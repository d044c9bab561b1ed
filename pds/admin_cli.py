"""`skyloft pds admin ...`: the operator's commands against a running PDS over HTTP, like the
reference's `pdsadmin` (pds-README-self-hosting.md), authenticated with PDS_ADMIN_PASSWORD.

    skyloft pds admin account list
    skyloft pds admin account create HANDLE EMAIL
    skyloft pds admin account takedown DID [--ref REF] | untakedown DID
    skyloft pds admin account reset-password DID
    skyloft pds admin account delete DID
    skyloft pds admin invite create [--uses N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any, Final

from atcore.xrpc.client import HttpClient, XrpcClient, XrpcClientError, http_session
from pds.config import DEFAULT_PORT

TIMEOUT: Final = 30.0
PAGE: Final = 100


class AdminError(Exception):
    """The PDS refused a call, or did not answer; the message is its XRPC error."""


class AdminClient:
    """XRPC calls to the PDS at `url` as its admin (HTTP basic auth)."""

    def __init__(self, url: str, password: str, http: HttpClient) -> None:
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        self._pds = XrpcClient(url, http, auth_header=f"Basic {token}", timeout=TIMEOUT)

    async def call(self, nsid: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        """A query with `params`, or a procedure with the JSON `body`."""
        try:
            if body is None:
                return await self._pds.query(nsid, params)
            return await self._pds.procedure(nsid, body)
        except XrpcClientError as exc:
            raise AdminError(f"{nsid} failed: {exc}") from exc


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows under their headers in left-aligned columns."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


async def _list(client: AdminClient, args: argparse.Namespace) -> str:
    dids: list[str] = []
    statuses: dict[str, str] = {}
    cursor: str | None = None
    while True:
        page = await client.call("com.atproto.sync.listRepos", limit=PAGE, cursor=cursor)
        for repo in page["repos"]:
            dids.append(repo["did"])
            statuses[repo["did"]] = repo.get("status", "active")
        cursor = page.get("cursor")
        if not cursor or not page["repos"]:
            break
    rows = []
    for start in range(0, len(dids), PAGE):
        infos = await client.call(
            "com.atproto.admin.getAccountInfos", dids=dids[start : start + PAGE]
        )
        for info in infos["infos"]:
            did = info["did"]
            rows.append([info["handle"], info.get("email", ""), did, statuses[did]])
    return table(["Handle", "Email", "DID", "Status"], rows)


async def _create(client: AdminClient, args: argparse.Namespace) -> str:
    password = secrets.token_urlsafe(18)
    body = {"handle": args.handle, "email": args.email, "password": password}
    described = await client.call("com.atproto.server.describeServer")
    if described["inviteCodeRequired"]:
        invite = await client.call("com.atproto.server.createInviteCode", {"useCount": 1})
        body["inviteCode"] = invite["code"]
    account = await client.call("com.atproto.server.createAccount", body)
    return table(["Handle", "DID", "Password"], [[account["handle"], account["did"], password]])


async def _takedown(client: AdminClient, args: argparse.Namespace, applied: bool) -> str:
    takedown: dict[str, Any] = {"applied": applied}
    if applied and args.ref:
        takedown["ref"] = args.ref
    subject = {"$type": "com.atproto.admin.defs#repoRef", "did": args.did}
    await client.call(
        "com.atproto.admin.updateSubjectStatus", {"subject": subject, "takedown": takedown}
    )
    return f"{args.did} {'taken down' if applied else 'restored'}"


async def _reset_password(client: AdminClient, args: argparse.Namespace) -> str:
    password = secrets.token_urlsafe(18)
    await client.call(
        "com.atproto.admin.updateAccountPassword", {"did": args.did, "password": password}
    )
    return table(["DID", "New password"], [[args.did, password]])


async def _delete(client: AdminClient, args: argparse.Namespace) -> str:
    await client.call("com.atproto.admin.deleteAccount", {"did": args.did})
    return f"{args.did} deleted"


async def _invite(client: AdminClient, args: argparse.Namespace) -> str:
    invite = await client.call("com.atproto.server.createInviteCode", {"useCount": args.uses})
    code: str = invite["code"]
    return code


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `admin` under the `skyloft pds` commands."""
    admin = commands.add_parser("admin", help="administer a running PDS (like pdsadmin)")
    admin.add_argument(
        "--url",
        help=f"the PDS (PDS_ADMIN_URL; default http://127.0.0.1:PDS_PORT or {DEFAULT_PORT})",
    )
    admin.add_argument("--password", help="admin password (default: PDS_ADMIN_PASSWORD)")
    groups = admin.add_subparsers(dest="admin_group", required=True)
    account = groups.add_parser("account", help="accounts").add_subparsers(
        dest="admin_command", required=True
    )
    account.add_parser("list", help="list accounts").set_defaults(action=_list)
    create = account.add_parser("create", help="create an account (prints its password)")
    create.add_argument("handle")
    create.add_argument("email")
    create.set_defaults(action=_create)
    down = account.add_parser("takedown", help="take an account down")
    down.add_argument("did")
    down.add_argument("--ref", help="a moderation reference kept with the takedown")
    down.set_defaults(action=lambda c, a: _takedown(c, a, True))
    up = account.add_parser("untakedown", help="reverse a takedown")
    up.add_argument("did")
    up.set_defaults(action=lambda c, a: _takedown(c, a, False))
    reset = account.add_parser("reset-password", help="set a new random password (printed)")
    reset.add_argument("did")
    reset.set_defaults(action=_reset_password)
    delete = account.add_parser("delete", help="delete an account and its repo")
    delete.add_argument("did")
    delete.set_defaults(action=_delete)
    invite = groups.add_parser("invite", help="invite codes").add_subparsers(
        dest="admin_command", required=True
    )
    make = invite.add_parser("create", help="create an invite code (printed)")
    make.add_argument("--uses", type=int, default=1, help="how many accounts it admits")
    make.set_defaults(action=_invite)
    admin.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("PDS_ADMIN_URL")
    url = url or f"http://127.0.0.1:{os.environ.get('PDS_PORT') or DEFAULT_PORT}"
    password = args.password or os.environ.get("PDS_ADMIN_PASSWORD")
    if not password:
        print(
            "skyloft pds admin: PDS_ADMIN_PASSWORD is not set (or pass --password)", file=sys.stderr
        )
        return 2
    try:
        print(asyncio.run(_act(url, password, args)))
    except AdminError as exc:
        print(f"skyloft pds admin: {exc}", file=sys.stderr)
        return 1
    return 0


async def _act(url: str, password: str, args: argparse.Namespace) -> str:
    async with http_session(connections=4, trust_env=True) as http:
        result: str = await args.action(AdminClient(url, password, http), args)
        return result
