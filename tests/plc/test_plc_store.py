"""The PLC store's own guarantees, below the validation layer."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atcore.identity.plc import did_for_genesis, genesis_op, op_cid, sign_operation, update_op
from atcore.identity.plc_log import LogEntry
from atcore.keys import generate_k256
from plc.store import Append, PlcStore

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def _blindly(entry: LogEntry) -> Callable[[list[LogEntry]], Append]:
    """A decision that appends `entry` without looking at the log (no validation at all)."""
    return lambda log: Append(entry, ())


async def test_live_chain_cannot_fork_even_without_validation(tmp_path: Path) -> None:
    key = generate_k256()
    did_key = key.public_key().did_key()
    genesis = sign_operation(
        genesis_op(signing_key=did_key, rotation_keys=[did_key], handle="a.test", pds="https://p"),
        key,
    )
    did = did_for_genesis(genesis)
    forks = [
        sign_operation(update_op(genesis, op_cid(genesis), handle=f"{n}.test"), key)
        for n in ("one", "two")
    ]
    store = await PlcStore.open(tmp_path / "plc.sqlite")
    try:
        for op in (genesis, forks[0]):
            await store.append(did, _blindly(LogEntry(did, op, op_cid(op), False, T0)))
        rogue = LogEntry(did, forks[1], op_cid(forks[1]), False, T0)
        with pytest.raises(sqlite3.IntegrityError):
            await store.append(did, _blindly(rogue))

        def refuse(log: list[LogEntry]) -> Append:
            assert [e.cid for e in log] == [op_cid(genesis), op_cid(forks[0])]
            raise ValueError("decided against it")

        with pytest.raises(ValueError, match="decided against it"):
            await store.append(did, refuse)
        assert [e.cid for e in await store.log(did)] == [op_cid(genesis), op_cid(forks[0])]
        # A nullifying append may take the same prev: the old successor is no longer live.
        await store.append(did, lambda log: Append(rogue, (op_cid(forks[0]),)))
        log = await store.log(did)
        assert [(e.cid, e.nullified) for e in log] == [
            (op_cid(genesis), False),
            (op_cid(forks[0]), True),
            (op_cid(forks[1]), False),
        ]
        assert [seq for seq, _ in await store.export_by_seq(0, 10)] == [1, 2, 3]
    finally:
        await store.close()
