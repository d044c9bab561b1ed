"""One-time codes mailed to an account's address (confirm email, update email, reset password,
delete account, sign a PLC operation), in the reference PDS's `XXXXX-XXXXX` shape."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Final, Literal

from atcore.xrpc.errors import InvalidRequest
from pds import mailer
from pds.accounts.account import Account
from pds.context import AppContext

Purpose = Literal[
    "confirm_email", "update_email", "reset_password", "delete_account", "plc_operation"
]
# How long a mailed code stays valid.
TOKEN_SECONDS: Final = 15 * 60
# A typed code is short; anything longer is not one of ours.
MAX_TOKEN_LENGTH: Final = 64


def new_token() -> str:
    """Two groups of five base32 characters: easy to type, 50 random bits."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii")[:10]
    return f"{raw[:5]}-{raw[5:]}"


async def issue(ctx: AppContext, purpose: Purpose, did: str) -> str:
    """A fresh code for (purpose, did), replacing any earlier one."""
    token = new_token()
    await ctx.accounts.tokens.put_email_token(purpose, did, token)
    return token


async def mail_code(
    ctx: AppContext, account: Account, purpose: Purpose, compose: Callable[[str], mailer.Mail]
) -> None:
    """Issue a code for (purpose, account) and mail it to the account's address."""
    if account.email is None:
        raise InvalidRequest("account does not have an email address")
    token = await issue(ctx, purpose, account.did)
    await mailer.send_mail(ctx.mailer, account.email, compose(token))


async def redeem(ctx: AppContext, purpose: Purpose, did: str, token: str) -> None:
    """Use up a code, or raise InvalidRequest named ExpiredToken / InvalidToken."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidRequest("Token is invalid", "InvalidToken")
    refused = await ctx.accounts.tokens.take_email_token(purpose, did, token, TOKEN_SECONDS)
    if refused == "expired":
        raise InvalidRequest("Token is expired", "ExpiredToken")
    if refused:
        raise InvalidRequest("Token is invalid", "InvalidToken")
