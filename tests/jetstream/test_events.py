"""jetstream.events: the v1 JSON is byte-for-byte what the official server sends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atcore import cbor
from atcore.cid import cid_for_cbor, parse_cid
from atcore.datamodel import record_from_json
from jetstream.events import (
    account_json,
    commit_json,
    go_json,
    identity_json,
    record_json,
)

GOLDEN = (Path(__file__).parent / "golden_v1.jsonl").read_bytes().splitlines()


def rebuild(event: dict) -> bytes:
    did, time_us = event["did"], event["time_us"]
    if event["kind"] == "identity":
        i = event["identity"]
        return identity_json(did, time_us, i["seq"], i["time"], i.get("handle"))
    if event["kind"] == "account":
        a = event["account"]
        return account_json(did, time_us, a["seq"], a["time"], a["active"], a.get("status"))
    c = event["commit"]
    if "record" not in c:
        return commit_json(did, time_us, c["rev"], c["operation"], c["collection"], c["rkey"])
    # The record as the firehose carries it: a DAG-CBOR block.
    record = record_json(cbor.encode(record_from_json(c["record"])))
    cid = parse_cid(c["cid"])
    return commit_json(
        did, time_us, c["rev"], c["operation"], c["collection"], c["rkey"], record, cid
    )


@pytest.mark.parametrize("line", GOLDEN, ids=[str(i) for i in range(len(GOLDEN))])
def test_golden_events_rebuild_byte_for_byte(line: bytes) -> None:
    assert rebuild(json.loads(line)) == line


def test_golden_records_hash_to_their_cids() -> None:
    """The records are the data-model values their CIDs name: the rebuild is not circular."""
    for line in GOLDEN:
        commit = json.loads(line).get("commit", {})
        if "record" in commit:
            block = cbor.encode(record_from_json(commit["record"]))
            assert cid_for_cbor(block).encode() == commit["cid"]


def test_go_escapes_html_and_line_separators_but_not_other_unicode() -> None:
    text = go_json({"t": "<a href='x'>&</a>\u2028\u2029é🔞\n\x01\x7f\b\f"})
    assert text == (
        '{"t":"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e\\u2028\\u2029é🔞'
        '\\n\\u0001\x7f\\b\\f"}'
    )


def test_record_maps_are_sorted_and_bytes_and_links_use_the_data_model() -> None:
    cid = cid_for_cbor(b"\xa0")
    record = {"z": 1, "a": {"y": b"\x00\x01", "b": [cid]}, "$type": "x.y.z"}
    body = commit_json(
        "did:plc:a", 5, "3l", "create", "x.y.z", "k", record_json(cbor.encode(record)), cid
    )
    expected_record = (
        '{"$type":"x.y.z","a":{"b":[{"$link":"' + cid.encode() + '"}],"y":{"$bytes":"AAE"}},"z":1}'
    )
    assert expected_record in body.decode()


def test_blobs_keep_go_struct_order_and_other_maps_are_sorted() -> None:
    """A record holding a blob takes the walk that writes the blob in Go's struct order; maps
    beside it, even blob-like ones, are sorted like any other (by code point: `é` after `z`)."""
    ref = cid_for_cbor(b"\xa0")
    blob = {"$type": "blob", "ref": ref, "mimeType": "image/png", "size": 3}
    record = {"z": "<&>", "é": 1, "img": blob, "like": {**blob, "extra": True}}
    link = '{"$link":"' + ref.encode() + '"}'
    assert (
        record_json(cbor.encode(record))
        == (
            '{"img":{"$type":"blob","ref":' + link + ',"mimeType":"image/png","size":3},'
            '"like":{"$type":"blob","extra":true,"mimeType":"image/png","ref":'
            + link
            + ',"size":3},'
            '"z":"\\u003c\\u0026\\u003e","é":1}'
        ).encode()
    )
    del record["img"], record["like"]
    assert record_json(cbor.encode(record)) == '{"z":"\\u003c\\u0026\\u003e","é":1}'.encode()
