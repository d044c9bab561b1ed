"""Which e-mail addresses an account may register: RFC 5321 mailboxes (with RFC 6531's UTF-8),
checked as strictly as the reference PDS checks them.

A mailbox is `local@domain`: the local part is dot-separated atoms of RFC 5321 `atext` or
non-ASCII characters, at most 64 UTF-8 bytes; the domain has at least two labels of letters,
digits and inner hyphens (an internationalised label is checked in its punycode form), the last
starting with a letter. Quoted local parts, address literals and comments are refused, so
`<script>@x.com` or `a b@x.com` never reach the database or a mail header.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

MAX_ADDRESS_LENGTH: Final = 254
MAX_LOCAL_BYTES: Final = 64
MAX_DOMAIN_LENGTH: Final = 256
MAX_LABEL_LENGTH: Final = 63

_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_TOP_LABEL = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
# Controls, space and URL separators never appear in a domain, before or after punycode.
_DOMAIN_FORBIDDEN = re.compile(r"[\x00-\x20@:/\\#!$&'()*+,;=?%\x7f]")


def is_valid_email(address: str) -> bool:
    """Whether `address` is a mailbox we accept (see the module docstring)."""
    if not address.isascii():
        address = unicodedata.normalize("NFC", address)
    if len(address) > MAX_ADDRESS_LENGTH or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    if not local or len(local.encode()) > MAX_LOCAL_BYTES:
        return False
    if not all(_ATOM.fullmatch(atom) for atom in local.split(".")):
        return False
    return _is_valid_domain(domain)


def _is_valid_domain(domain: str) -> bool:
    if not domain or len(domain) > MAX_DOMAIN_LENGTH or _DOMAIN_FORBIDDEN.search(domain):
        return False
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    *labels, top = domain.split(".")
    if not labels:
        return False
    if any(len(label) > MAX_LABEL_LENGTH or not _LABEL.fullmatch(label) for label in labels):
        return False
    return len(top) <= MAX_LABEL_LENGTH and _TOP_LABEL.fullmatch(top) is not None
