"""The official PLC audit-log vectors replayed through the directory, op by op at their createdAt.

As the reference directory's interop test does, the log rules are exercised below the route (the
store and its per-DID rate limit included), where a log already holding a legacy create still
replays; over HTTP the same operations meet what a client may submit (plc.limits).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from atcore.errors import InvalidPlcOperation
from atcore.identity.plc import op_cid
from atcore.identity.plc_data import operation_data
from atcore.identity.plc_log import parse_timestamp
from tests.plc.support import Clock, post_op
from tests.vectors import PLC_INTEROP

AUDIT_VECTORS = sorted((PLC_INTEROP / "audit_log").glob("*/*.json"))
# Valid logs holding an operation a client may no longer submit: its index and why.
REFUSED_OVER_HTTP = {
    "log_duplicate_rotation_keys": (0, "duplicate rotation key"),
    "log_empty_rotation_keys": (1, "at least one rotation key"),
    "log_legacy_dholms": (0, "legacy 'create' operations are no longer accepted"),
    "log_nullification": (1, "at least one rotation key"),
}


def _ids(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


async def _check_replayed(client: httpx.AsyncClient, entries: list[dict[str, Any]]) -> None:
    """The directory now serves exactly this audit log and its final document."""
    did = entries[0]["did"]
    assert (await client.get(f"/{did}/log/audit")).json() == entries
    live = [e["operation"] for e in entries if not e["nullified"]]
    response = await client.get(f"/{did}/data")
    if live[-1]["type"] == "plc_tombstone":
        assert response.status_code == 410
    else:
        assert response.json() == {"did": did, **operation_data(live[-1])}


async def _stored_cids(client: httpx.AsyncClient, did: str) -> set[str]:
    response = await client.get(f"/{did}/log/audit")
    return {e["cid"] for e in response.json()} if response.status_code == 200 else set()


@pytest.mark.parametrize("path", AUDIT_VECTORS, ids=_ids)
async def test_interop_logs_replay_under_the_log_rules(
    local_app: Starlette, local: tuple[httpx.AsyncClient, Clock], path: Path
) -> None:
    """Valid logs rebuild the same audit log and document; in invalid ones the offending
    operation is refused and not stored."""
    client, clock = local
    ops = local_app.state.ctx.ops
    entries = json.loads(path.read_text())
    did = entries[0]["did"]
    refused = []
    for entry in entries:
        clock.now = parse_timestamp(entry["createdAt"])
        try:
            await ops.submit(did, entry["operation"])
        except InvalidPlcOperation:
            refused.append(entry["cid"])
    if path.parent.name == "invalid":
        assert refused and not await _stored_cids(client, did) & set(refused)
        return
    assert refused == []
    await _check_replayed(client, entries)


@pytest.mark.parametrize("path", AUDIT_VECTORS, ids=_ids)
async def test_interop_logs_submitted_over_http(
    local: tuple[httpx.AsyncClient, Clock], path: Path
) -> None:
    """Valid logs rebuild over HTTP too, but for operations a client may no longer submit
    (refused with 400 and not stored); invalid ones get a 400 for the offending operation."""
    client, clock = local
    entries = json.loads(path.read_text())
    did = entries[0]["did"]
    responses = []
    for entry in entries:
        clock.now = parse_timestamp(entry["createdAt"])
        responses.append(await post_op(client, did, entry["operation"]))
    statuses = [r.status_code for r in responses]
    rejected = {op_cid(e["operation"]) for e, s in zip(entries, statuses, strict=True) if s != 200}
    assert set(statuses) <= {200, 400}
    assert not await _stored_cids(client, did) & rejected
    if path.parent.name == "invalid":
        assert 400 in statuses
    elif path.stem in REFUSED_OVER_HTTP:
        index, reason = REFUSED_OVER_HTTP[path.stem]
        assert statuses[: index + 1] == [200] * index + [400]
        assert reason in responses[index].json()["message"]
    else:
        assert statuses == [200] * len(entries)
        await _check_replayed(client, entries)
