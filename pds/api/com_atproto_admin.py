"""com.atproto.admin.*: the operator's methods, behind HTTP Basic `admin:PDS_ADMIN_PASSWORD`
(lexicons com/atproto/admin; guide-moderation.md for takedowns).

A taken-down account cannot log in and its repo and blobs are not served (pds/api/repo_access);
a taken-down record or blob stays in the signed repo but is not served on its own.
"""

from __future__ import annotations

from typing import Any, Final

from atcore.cid import cid_text, parse_cid
from atcore.errors import InvalidCid, InvalidSyntax
from atcore.syntax.aturi import parse_aturi
from atcore.syntax.datetime import now_iso
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest
from pds import mailer
from pds.accounts.account import Account
from pds.accounts.create import check_password, normalize_email
from pds.accounts.handles import change_handle
from pds.accounts.passwords import hash_password
from pds.accounts.status import deactivate, delete_account, set_takedown
from pds.accounts.store import EmailTaken
from pds.accounts.subjects import SubjectKind
from pds.actor_store import RepoMissing
from pds.api.repo_access import find_account
from pds.auth import admin_auth
from pds.context import AppContext, ctx_of

xrpc = Methods()

REPO_REF: Final = "com.atproto.admin.defs#repoRef"
STRONG_REF: Final = "com.atproto.repo.strongRef"
BLOB_REF: Final = "com.atproto.admin.defs#repoBlobRef"
MAX_INFOS: Final = 100


def _not_found() -> InvalidRequest:
    return InvalidRequest("Subject not found", "NotFound")


async def _account(ctx: AppContext, did: str) -> Account:
    account = await ctx.accounts.by_did(did)
    if account is None:
        raise InvalidRequest("Account not found", "NotFound")
    return account


async def account_view(ctx: AppContext, account: Account) -> dict[str, Any]:
    view: dict[str, Any] = {
        "did": account.did,
        "handle": account.handle,
        "indexedAt": account.created_at,
        "invites": await ctx.accounts.invites.for_account(account.did),
    }
    disabled, note = await ctx.accounts.invites.account_settings(account.did)
    view["invitesDisabled"] = disabled
    if note is not None:
        view["inviteNote"] = note
    code = await ctx.accounts.invites.used_by(account.did)
    invited_by = None if code is None else await ctx.accounts.invites.get(code)
    if invited_by is not None:
        view["invitedBy"] = invited_by
    for key, value in (
        ("email", account.email),
        ("emailConfirmedAt", account.email_confirmed_at),
        ("deactivatedAt", account.deactivated_at),
    ):
        if value is not None:
            view[key] = value
    return view


@xrpc.query("com.atproto.admin.getAccountInfo", auth=admin_auth)
async def get_account_info(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    return await account_view(ctx, await _account(ctx, req.params["did"]))


@xrpc.query("com.atproto.admin.getAccountInfos", auth=admin_auth)
async def get_account_infos(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    dids: list[str] = req.params["dids"]
    if len(dids) > MAX_INFOS:
        raise InvalidRequest(f"at most {MAX_INFOS} dids")
    infos = []
    for did in dict.fromkeys(dids):
        account = await ctx.accounts.by_did(did)
        if account is not None:
            infos.append(await account_view(ctx, account))
    return {"infos": infos}


@xrpc.query("com.atproto.admin.searchAccounts", auth=admin_auth)
async def search_accounts(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit = req.params.get("limit", 50)
    found = await ctx.accounts.search(req.params.get("email"), limit, req.params.get("cursor"))
    out: dict[str, Any] = {"accounts": [await account_view(ctx, a) for a in found]}
    if len(found) == limit:
        out["cursor"] = found[-1].did
    return out


def _blob_cid(text: str) -> str:
    """The CID in the base32 form getBlob looks up."""
    try:
        return parse_cid(text).encode()
    except (InvalidCid, ValueError):
        raise InvalidRequest(f"bad blob cid {text[:100]!r}") from None


def _status(ref: str | None) -> dict[str, Any]:
    return {"applied": True, "ref": ref} if ref is not None else {"applied": False}


async def _record_subject(ctx: AppContext, uri: str) -> tuple[str, dict[str, Any]]:
    """(did, strongRef) of a hosted record named by `uri`."""
    try:
        parsed = parse_aturi(uri)
    except InvalidSyntax as exc:
        raise InvalidRequest(f"bad record uri: {exc}") from None
    account = await find_account(ctx, str(parsed.authority))
    if account is None or not parsed.collection or not parsed.rkey:
        raise _not_found()
    collection, rkey = str(parsed.collection), str(parsed.rkey)
    try:
        store = await ctx.actors.open(account.did)
    except RepoMissing:
        raise _not_found() from None
    row = await store.read(lambda sql: sql.get_record(collection, rkey))
    if row is None:
        raise _not_found()
    canonical = f"at://{account.did}/{collection}/{rkey}"
    return account.did, {"$type": STRONG_REF, "uri": canonical, "cid": cid_text(row.cid)}


@xrpc.query("com.atproto.admin.getSubjectStatus", auth=admin_auth)
async def get_subject_status(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    did, uri, blob = req.params.get("did"), req.params.get("uri"), req.params.get("blob")
    subjects = ctx.accounts.subjects
    if blob is not None:
        if did is None:
            raise InvalidRequest("Must provide a did to request blob state")
        ref = await subjects.takedown_ref("blob", did, _blob_cid(blob))
        subject = {"$type": BLOB_REF, "did": did, "cid": blob}
        return {"subject": subject, "takedown": _status(ref)}
    if uri is not None:
        did, record = await _record_subject(ctx, uri)
        ref = await subjects.takedown_ref("record", did, record["uri"])
        return {"subject": record, "takedown": _status(ref)}
    if did is None:
        raise InvalidRequest("No provided subject")
    account = await ctx.accounts.by_did(did)
    if account is None:
        raise _not_found()
    out = {"subject": {"$type": REPO_REF, "did": did}, "takedown": _status(account.takedown_ref)}
    out["deactivated"] = _status(account.deactivated_at)
    return out


@xrpc.procedure("com.atproto.admin.updateSubjectStatus", auth=admin_auth)
async def update_subject_status(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    subject: dict[str, Any] = req.input["subject"]
    takedown, deactivated = req.input.get("takedown"), req.input.get("deactivated")
    ref = None
    if takedown is not None and takedown["applied"]:
        ref = takedown.get("ref") or now_iso()
    kind = subject.get("$type")
    if kind == REPO_REF:
        account = await ctx.accounts.by_did(subject["did"])
        if account is None:
            raise _not_found()
        if takedown is not None:
            await set_takedown(ctx, account, ref)
        if deactivated is not None:
            await _set_deactivated(ctx, account, deactivated["applied"])
    elif kind in (STRONG_REF, BLOB_REF) and takedown is not None:
        what: SubjectKind = "record" if kind == STRONG_REF else "blob"
        if what == "record":
            did, record = await _record_subject(ctx, subject["uri"])
            key = record["uri"]
        else:
            did, key = subject["did"], _blob_cid(subject["cid"])
        await ctx.accounts.subjects.set_takedown(what, did, key, ref)
    elif kind not in (REPO_REF, STRONG_REF, BLOB_REF):
        raise InvalidRequest("Invalid subject")
    out: dict[str, Any] = {"subject": subject}
    if takedown is not None:
        out["takedown"] = takedown
    return out


async def _set_deactivated(ctx: AppContext, account: Account, applied: bool) -> None:
    if applied:
        await deactivate(ctx, account)
    elif account.deactivated_at is not None:
        await ctx.accounts.set_deactivated(account.did, False)
        if account.takedown_ref is None:
            await ctx.sequencer.emit_account(account.did, True, None)


@xrpc.procedure("com.atproto.admin.updateAccountHandle", auth=admin_auth)
async def update_account_handle(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    await change_handle(ctx, await _account(ctx, req.input["did"]), req.input["handle"])


@xrpc.procedure("com.atproto.admin.updateAccountEmail", auth=admin_auth)
async def update_account_email(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await find_account(ctx, req.input["account"])
    if account is None:
        raise InvalidRequest(f"Account does not exist: {req.input['account']}")
    try:
        await ctx.accounts.set_email(account.did, normalize_email(req.input["email"]))
    except EmailTaken:
        raise InvalidRequest("This email address is already in use") from None


@xrpc.procedure("com.atproto.admin.updateAccountPassword", auth=admin_auth)
async def update_account_password(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await _account(ctx, req.input["did"])
    hashed = await hash_password(check_password(req.input["password"]))
    await ctx.accounts.set_password(account.did, hashed)


@xrpc.procedure("com.atproto.admin.deleteAccount", auth=admin_auth)
async def delete_account_(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    await delete_account(ctx, (await _account(ctx, req.input["did"])).did)


@xrpc.procedure("com.atproto.admin.sendEmail", auth=admin_auth)
async def send_email(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    account = await _account(ctx, req.input["recipientDid"])
    if account.email is None:
        raise InvalidRequest("account does not have an email address")
    subject = req.input.get("subject") or f"Message from {ctx.config.hostname}"
    await mailer.send_mail(ctx.mailer, account.email, mailer.Mail(subject, req.input["content"]))
    return {"sent": True}


@xrpc.query("com.atproto.admin.getInviteCodes", auth=admin_auth)
async def get_invite_codes(req: XrpcRequest) -> dict[str, Any]:
    params = req.params
    codes, cursor = await ctx_of(req).accounts.invites.page(
        params.get("sort", "recent"), params.get("limit", 100), params.get("cursor")
    )
    return {"codes": codes, **({"cursor": cursor} if cursor else {})}


@xrpc.procedure("com.atproto.admin.disableInviteCodes", auth=admin_auth)
async def disable_invite_codes(req: XrpcRequest) -> None:
    codes, accounts = req.input.get("codes", []), req.input.get("accounts", [])
    if "admin" in accounts:
        raise InvalidRequest("cannot disable admin invite codes")
    if len(codes) + len(accounts) > MAX_INFOS:
        raise InvalidRequest(f"at most {MAX_INFOS} codes and accounts at once")
    await ctx_of(req).accounts.invites.disable_codes(codes, accounts)


@xrpc.procedure("com.atproto.admin.enableAccountInvites", auth=admin_auth)
async def enable_account_invites(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await _account(ctx, req.input["account"])
    await ctx.accounts.invites.set_account_disabled(account.did, False, req.input.get("note"))


@xrpc.procedure("com.atproto.admin.disableAccountInvites", auth=admin_auth)
async def disable_account_invites(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await _account(ctx, req.input["account"])
    await ctx.accounts.invites.set_account_disabled(account.did, True, req.input.get("note"))
