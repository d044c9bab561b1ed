"""Point the DID at the new PDS (guide-account-migration.md, "Updating Identity";
plc-did-method-spec-v0.1.md).

did:plc: the old PDS signs a PLC operation with the new PDS's recommended credentials once the
person gives the code it mailed them; the new PDS submits it. The signed operation is kept in
the state file until submitted, because the code is single-use. did:web: the person publishes
the printed document themselves, and a re-run checks that they did.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from atcore.identity.diddoc import normalize_service_url
from atcore.identity.plc_data import did_document
from atcore.identity.resolver import IdentityResolver
from atcore.xrpc.client import XrpcClientError
from skyloft.account.person import MigrationError, MigrationPaused, Prompts
from skyloft.account.session import Session
from skyloft.account.state import Journal


class IdentityStep:
    def __init__(
        self,
        journal: Journal,
        plc_token: str | None,
        old: Session,
        new: Session,
        resolver: IdentityResolver,
        prompts: Prompts,
    ) -> None:
        self.journal = journal
        self.state = journal.state
        self.plc_token = plc_token
        self.old, self.new = old, new
        self.resolver = resolver
        self.prompts = prompts

    async def run(self, catch_up: Callable[[], Awaitable[None]]) -> None:
        creds = await self.new.query("com.atproto.identity.getRecommendedDidCredentials")
        if await self.points_at(creds):
            return
        if self.state.did.startswith("did:web:"):
            self._show_did_web(creds)
            raise MigrationPaused("publish the DID document above, then run this command again")
        await catch_up()
        if self.state.plc_operation is None:
            token = await plc_code(self.old, self.plc_token, self.prompts)
            signed = await self.old.procedure(
                "com.atproto.identity.signPlcOperation", {"token": token, **creds}
            )
            self.state.plc_operation = signed["operation"]
            self.journal.save()
        await self._submit()
        if not await self.points_at(creds):
            raise MigrationError(f"the DID document of {self.state.did} still names another PDS")

    async def points_at(self, creds: dict[str, Any]) -> bool:
        return await points_at(self.resolver, self.state.did, creds)

    async def _submit(self) -> None:
        operation = self.state.plc_operation
        try:
            submit = "com.atproto.identity.submitPlcOperation"
            await self.new.procedure(submit, {"operation": operation})
        except XrpcClientError as exc:
            if 400 <= exc.status < 500:
                # Refused for good (e.g. the DID moved on since it was signed): sign anew.
                self.state.plc_operation = None
                self.journal.save()
            raise

    def _show_did_web(self, creds: dict[str, Any]) -> None:
        host = self.state.did.removeprefix("did:web:").replace("%3A", ":")
        self.prompts.say(f"publish this document at https://{host}/.well-known/did.json:")
        self.prompts.say(json.dumps(did_document(self.state.did, creds), indent=2))


async def plc_code(pds: Session, given: str | None, prompts: Prompts) -> str:
    """The code that lets `pds` sign a PLC operation: `given`, or one it mails for the asking
    and the person then types or pipes in. MigrationPaused when there is none."""
    if given:
        return given
    await pds.procedure("com.atproto.identity.requestPlcOperationSignature")
    prompts.say("the PDS mailed a code to the account's email address")
    code = prompts.plc_token()
    if not code:
        raise MigrationPaused("no PLC code given: run this command again with --plc-token CODE")
    return code


async def points_at(resolver: IdentityResolver, did: str, creds: dict[str, Any]) -> bool:
    """Whether the DID document names the PDS and signing key the new PDS recommends (its
    own public URL, which may differ from the address this command reached it at)."""
    doc = await resolver.refresh(did)
    key = doc.signing_key.did_key() if doc.signing_key else None
    endpoint = creds["services"].get("atproto_pds", {}).get("endpoint", "")
    wanted = normalize_service_url(endpoint)
    return doc.pds_endpoint == wanted and key == creds["verificationMethods"].get("atproto")
