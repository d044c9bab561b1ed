from __future__ import annotations

import pytest

from pds.accounts.email_address import is_valid_email
from tests.pds.conftest import PASSWORD, Pds


@pytest.mark.parametrize(
    "address",
    [
        "alice@example.com",
        "a.b+tag@mail.example.co.uk",
        "o'brien@example.ie",
        "x!#$%&*/=?^_`{|}~-@example.com",
        "jöhn@exämple.de",  # RFC 6531: UTF-8 in both parts
        "a@xn--exmple-cua.de",
        "a@b.c0m",
        "l" * 64 + "@example.com",
    ],
)
def test_mailboxes_accepted(address: str) -> None:
    assert is_valid_email(address)


@pytest.mark.parametrize(
    "address",
    [
        "<script>@x.com",
        "a b@example.com",
        '"quoted"@example.com',
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "@example.com",
        "a@b@example.com",
        "a@localhost",
        "a@[127.0.0.1]",
        "a@-x.com",
        "a@x-.com",
        "a@x_y.com",
        "a@x.1com",
        "a@example.com.",
        "a@exa mple.com",
        "a@example.com\n",
        "l" * 65 + "@example.com",
        "a@" + "x" * 64 + ".com",
        "a@" + "x." * 130 + "com",
    ],
)
def test_mailboxes_refused(address: str) -> None:
    assert not is_valid_email(address)


async def test_create_account_refuses_markup_in_the_email(pds: Pds) -> None:
    body = {"handle": "bob.test", "email": "<script>@x.com", "password": PASSWORD}
    r = await pds.call("com.atproto.server.createAccount", body)
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": "InvalidRequest",
        "message": "This email address is not supported, please use a different email.",
    }
    assert await pds.ctx.accounts.by_handle("bob.test") is None
