"""Signed did:plc operations with hostile contents: a valid signature gets them past the first
check, to the validation of keys, services, handles and the chain behind it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from atcore.identity.plc import did_for_genesis, op_cid, sign_operation
from atcore.keys import PrivateKey
from tests.fuzz import hostile


class PlcAccount:
    """A DID on the directory under fuzzing, its rotation key and its newest operation."""

    def __init__(self, did: str, key: PrivateKey, head: dict[str, Any]) -> None:
        self.did = did
        self.key = key
        self.head = head


def signed_operations(
    account: Callable[[], PlcAccount], strings: st.SearchStrategy[str]
) -> st.SearchStrategy[tuple[str, bytes]]:
    """(path, body) pairs: operations signed by the account's key, either a new genesis (at
    its own DID) or one following the account's newest operation."""
    own_key = st.builds(lambda: account().key.public_key().did_key())
    key = hostile.mostly(own_key, strings)
    text = hostile.mostly(st.sampled_from(["https://pds.fuzz.test", "at://fuzz.test"]), strings)
    service = hostile.mostly(
        st.fixed_dictionaries({"type": text, "endpoint": text}), hostile.json_values(strings)
    )
    operation = st.fixed_dictionaries(
        {
            "type": st.just("plc_operation"),
            "rotationKeys": hostile.mostly(
                st.lists(key, min_size=1, max_size=3), st.lists(key, max_size=7)
            ),
            "verificationMethods": st.dictionaries(
                hostile.mostly(st.just("atproto"), strings), key, max_size=3
            ),
            "alsoKnownAs": st.lists(text, max_size=4),
            "services": st.dictionaries(
                hostile.mostly(st.just("atproto_pds"), strings), service, max_size=3
            ),
        }
    )
    tombstone = st.just({"type": "plc_tombstone"})
    legacy = st.fixed_dictionaries(
        {
            "type": st.just("create"),
            "signingKey": key,
            "recoveryKey": key,
            "handle": text,
            "service": text,
        }
    )
    body = st.one_of(operation, operation, tombstone, legacy)
    return st.builds(_sign, st.builds(account), body, st.booleans())


def _sign(account: PlcAccount, op: dict[str, Any], follows: bool) -> tuple[str, bytes]:
    op = {**op, "prev": op_cid(account.head) if follows else None}
    try:
        op = sign_operation(op, account.key)
        did = account.did if follows else did_for_genesis(op)
    except Exception:  # not encodable (a surrogate in a key, ...): sent unsigned, as it is
        did = account.did
    return f"/{did}", hostile.encode_json(op)
