"""`skyloft account migrate`: move an account to another PDS, keeping its DID (spec-account.md,
"PDS Account Migration"; guide-account-migration.md; pds-ACCOUNT_MIGRATION.md).

The steps run top to bottom; each is skipped when the state file says it is done, and most
also look at the servers first, so a step cut short after the server acted is not repeated.
The order keeps one side active at every instant: the new account is activated before the old
one is deactivated, and the email code that signs the PLC operation is asked for only when
the repository and every blob are in, so it cannot expire during the copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from atcore.identity.diddoc import normalize_service_url
from atcore.identity.resolver import IdentityResolver
from atcore.syntax.did import is_valid_did
from atcore.xrpc.client import HttpClient, XrpcClientError
from skyloft.account import state as states
from skyloft.account.blobs import copy_blobs
from skyloft.account.identity import IdentityStep
from skyloft.account.person import MigrationError, Prompts
from skyloft.account.session import Session
from skyloft.account.state import MigrationState
from skyloft.account.verify import check_migration

CREATE: Final = "com.atproto.server.createAccount"
CAR: Final = "application/vnd.ipld.car"
# How long the createAccount service token lives: long enough for a slow server.
SERVICE_TOKEN_SECONDS: Final = 600


@dataclass(frozen=True)
class Plan:
    source: str
    new_pds: str
    plc_url: str
    new_handle: str | None = None
    email: str | None = None
    invite_code: str | None = None
    plc_token: str | None = None
    relay_url: str | None = None
    state_path: Path | None = None
    dry_run: bool = False


async def migrate(
    plan: Plan, prompts: Prompts, http: httpx.AsyncClient, pds_http: HttpClient | None = None
) -> MigrationState:
    """Run (or continue) the migration. `http` resolves identities; the calls to both PDSes go
    through `pds_http` (default: `http`), best an `atcore.xrpc.client.http_session()`."""
    resolver = IdentityResolver(plan.plc_url, http, allow_private=True)
    did = await resolve_account(resolver, plan.source)
    path = plan.state_path or states.default_path(did)
    state = states.load(path) or await _new_state(resolver, plan, did)
    if (state.did, state.new_pds) != (did, _url(plan.new_pds)):
        raise MigrationError(f"{path} moves {state.did} to {state.new_pds}, not this migration")
    prompts.say(f"state file: {path}")
    if plan.dry_run:
        _describe(state, prompts)
        return state
    old = Session(state.old_pds, pds_http or http, notice=prompts.say)
    new = Session(state.new_pds, pds_http or http, notice=prompts.say)
    old_info = await old.login(did, prompts.old_password())
    new_password = prompts.new_password()
    journal = states.Journal(path, state, prompts.say)
    journal.save()
    await _account(journal, plan, old, new, old_info, new_password)
    if not state.is_done("repo"):
        await _import(state, old, new)
        journal.done("repo")
    if not state.is_done("blobs"):
        await copy_blobs(old, new, did)
        journal.done("blobs")
    if not state.is_done("preferences"):
        prefs = await old.query("app.bsky.actor.getPreferences")
        await new.procedure("app.bsky.actor.putPreferences", {"preferences": prefs["preferences"]})
        journal.done("preferences")
    if not state.is_done("identity"):
        step = IdentityStep(journal, plan.plc_token, old, new, resolver, prompts)
        await step.run(lambda: _catch_up(journal, old, new))
        journal.done("identity")
    if not state.is_done("activate"):
        if not (await new.query("com.atproto.server.getSession")).get("active", True):
            await new.procedure("com.atproto.server.activateAccount")
        journal.done("activate")
    if not state.is_done("deactivate"):
        if (await old.query("com.atproto.server.getSession")).get("active", True):
            await old.procedure("com.atproto.server.deactivateAccount", {})
        journal.done("deactivate")
    if not state.is_done("verify"):
        await check_migration(state, old, new, resolver, plan.relay_url, prompts.say)
        journal.done("verify")
    return state


async def resolve_account(resolver: IdentityResolver, source: str) -> str:
    """The DID a `HANDLE_OR_DID` argument names."""
    if is_valid_did(source):
        return source
    did = await resolver.resolve_handle(source.removeprefix("@"))
    if did is None:
        raise MigrationError(f"the handle {source} does not resolve to a DID")
    return did


def _url(url: str) -> str:
    normal = normalize_service_url(url)
    if normal is None:
        raise MigrationError(f"not a server URL (scheme://host[:port]): {url}")
    return normal


async def _new_state(resolver: IdentityResolver, plan: Plan, did: str) -> MigrationState:
    doc = await resolver.resolve_did(did)
    old_pds = doc.pds_endpoint
    if old_pds is None:
        raise MigrationError(f"the DID document of {did} names no PDS")
    if old_pds == _url(plan.new_pds):
        raise MigrationError(f"{did} is already hosted at {old_pds}")
    handle = plan.new_handle or doc.handle
    if handle is None:
        raise MigrationError(f"{did} claims no handle: give one with --new-handle")
    return MigrationState(did, old_pds, _url(plan.new_pds), handle)


def _describe(state: MigrationState, prompts: Prompts) -> None:
    prompts.say(f"would move {state.did} (handle {state.handle})")
    prompts.say(f"  from {state.old_pds}")
    prompts.say(f"  to   {state.new_pds}")
    for step in states.STEPS:
        prompts.say(f"  {'done' if state.is_done(step) else 'todo'}  {step}: {STEP_TEXT[step]}")


STEP_TEXT: Final = {
    "account": "create the account with the same DID on the new PDS (deactivated)",
    "repo": "copy the repository (sync.getRepo -> repo.importRepo)",
    "blobs": "copy every blob the new PDS misses (repo.listMissingBlobs)",
    "preferences": "copy the preferences",
    "identity": "point the DID at the new PDS (PLC operation signed with an emailed code)",
    "activate": "activate the account on the new PDS",
    "deactivate": "deactivate the account on the old PDS",
    "verify": "check DID document, records, blobs (and the relay) point at the new PDS",
}


async def _account(
    journal: states.Journal,
    plan: Plan,
    old: Session,
    new: Session,
    old_info: dict[str, Any],
    password: str,
) -> None:
    """Log in to the new account, creating it first unless it exists already."""
    state = journal.state
    try:
        await new.login(state.did, password)
    except XrpcClientError as exc:
        if state.is_done("account") or exc.status != 401:
            raise
    else:
        journal.done("account")
        return
    server = await new.query("com.atproto.server.describeServer")
    params = {"aud": server["did"], "lxm": CREATE, "exp": int(time.time()) + SERVICE_TOKEN_SECONDS}
    token = (await old.query("com.atproto.server.getServiceAuth", params))["token"]
    body = {"did": state.did, "handle": state.handle, "password": password}
    email = plan.email or old_info.get("email")
    if email:
        body["email"] = email
    if plan.invite_code:
        body["inviteCode"] = plan.invite_code
    new.client.auth_header = f"Bearer {token}"
    new.adopt(await new.client.procedure(CREATE, body))
    new.remember(state.did, password)
    journal.done("account")


async def _import(state: MigrationState, old: Session, new: Session) -> bool:
    """Import the old repository unless its latest rev is the one imported; True if it did."""
    latest = await old.query("com.atproto.sync.getLatestCommit", {"did": state.did})
    if latest["rev"] == state.imported_rev:
        return False
    car, _ = await old.query_bytes("com.atproto.sync.getRepo", {"did": state.did})
    await new.procedure("com.atproto.repo.importRepo", car, encoding=CAR)
    status = await old.query("com.atproto.server.checkAccountStatus")
    state.imported_rev = latest["rev"]
    state.records, state.blobs = status["indexedRecords"], status["expectedBlobs"]
    return True


async def _catch_up(journal: states.Journal, old: Session, new: Session) -> None:
    """What the old account wrote since the copy: the repository again, and new blobs."""
    if await _import(journal.state, old, new):
        await copy_blobs(old, new, journal.state.did)
        journal.save()
