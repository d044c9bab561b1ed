"""Hostile-upstream test helper: accounts whose repos and sync 1.1 events are built with atcore
the way a PDS builds them, and a scriptable fake PDS serving them (spec-sync.md,
spec-event-stream.md).

`FakeAccount` registers a did:plc at a PLC directory, keeps its repo in memory and produces
real `#commit` events (with the inversion proof blocks a PDS sends) and `#sync` events;
keyword overrides produce forged, rewound or inconsistent variants. `FakePds` is a Starlette
app serving describeServer, getRepo, getLatestCommit and a subscribeRepos stream that sends
whatever frames a test queues, valid or not; `serve_fake_pds` runs it on a free port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from atcore import cbor
from atcore.blockstore import MemoryBlockStore, OverlayBlockStore
from atcore.car import write_car
from atcore.cid import cid_for_cbor
from atcore.commit import create_commit
from atcore.frames import CommitEvent, RepoOp, SyncEvent, encode_frame
from atcore.identity.plc import did_for_genesis, genesis_op, op_cid, sign_operation, update_op
from atcore.identity.plc_client import PlcClient
from atcore.keys import PrivateKey, generate_k256
from atcore.mst import tree
from atcore.mst.diff import RecordOp
from atcore.mst.invert import invert_ops
from atcore.mst.store import NodeStore
from atcore.repo import RepoHead, export_blocks
from atcore.syntax.did import Did
from atcore.syntax.tid import Tid, TidClock
from plc.app import create_app
from plc.config import PlcConfig
from tests.servers import serving_in_loop

PLC_URL = "http://plc.test"
TIME = "2025-01-01T00:00:00.000Z"
_KEEP: Any = object()  # "use the real value" for keyword overrides


@asynccontextmanager
async def in_process_plc(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client whose requests go to our PLC directory app, served in-process."""
    app = create_app(PlcConfig(data_dir=data_dir))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            yield client


def post(text: str) -> dict[str, Any]:
    """A realistic app.bsky.feed.post record."""
    return {"$type": "app.bsky.feed.post", "text": text, "createdAt": TIME, "langs": ["en"]}


@dataclass
class FakeAccount:
    """A did:plc account with an in-memory repo, producing events as its PDS would."""

    did: Did
    key: PrivateKey
    rotation: PrivateKey
    last_op: dict[str, Any]
    store: MemoryBlockStore
    head: RepoHead
    genesis: CommitEvent  # the repo's first #commit (no since, no prevData, no ops)
    clock: TidClock = field(default_factory=TidClock)

    @classmethod
    async def create(cls, plc: PlcClient, pds_url: str, handle: str) -> FakeAccount:
        """Register the DID at the PLC (signing key, PDS endpoint) and start an empty repo."""
        key, rotation = generate_k256(), generate_k256()
        op = sign_operation(
            genesis_op(
                signing_key=key.public_key().did_key(),
                rotation_keys=[rotation.public_key().did_key()],
                handle=handle,
                pds=pds_url,
            ),
            rotation,
        )
        did = Did(did_for_genesis(op))
        await plc.submit(did, op)
        store = MemoryBlockStore()
        data = tree.empty_root(store)
        clock = TidClock()
        commit, block, cid = create_commit(did, data, clock.next(), key)
        store.put(cid, block)
        car = write_car(cid, [(cid, block), (data, store.get(data))])
        genesis = CommitEvent(0, did, cid, commit.rev, None, car, (), TIME)
        return cls(did, key, rotation, op, store, RepoHead(cid, commit, data), genesis, clock)

    @property
    def rev(self) -> str:
        assert self.head.commit is not None
        return self.head.commit.rev

    async def update_identity(
        self, plc: PlcClient, *, pds: str | None = None, key: PrivateKey | None = None
    ) -> None:
        """Move the account to another PDS and/or rotate its signing key at the PLC."""
        signing = key.public_key().did_key() if key is not None else None
        unsigned = update_op(self.last_op, op_cid(self.last_op), pds=pds, signing_key=signing)
        op = sign_operation(unsigned, self.rotation)
        await plc.submit(self.did, op)
        self.last_op = op
        if key is not None:
            self.key = key

    def commit(
        self,
        writes: Mapping[str, dict[str, Any] | bytes | None],
        *,
        key: PrivateKey | None = None,
        rev: str | None = None,
        did: str | None = None,
        advance: bool = True,
        proof: bool = True,
    ) -> CommitEvent:
        """A signed commit of `writes` (path -> record, None deletes) and its #commit event.

        A record given as bytes is stored as that block verbatim (a malformed record).
        Overrides build hostile variants: `key` signs with another key, `rev` sets the rev,
        `did` signs the commit for another DID, `proof=False` leaves the inversion proof
        blocks out. `advance=False` leaves the account's repo where it was.
        """
        prev_data, since = self.head.data, self.rev
        staged = OverlayBlockStore(self.store)
        ops: list[RepoOp] = []
        for path, record in writes.items():
            current = tree.get(self.store, prev_data, path)
            if record is None:
                ops.append(RepoOp("delete", path, None, current))
                continue
            block = record if isinstance(record, bytes) else cbor.encode(record)
            cid = cid_for_cbor(block)
            staged.put(cid, block)
            ops.append(RepoOp("create" if current is None else "update", path, cid, current))
        data = tree.apply(staged, prev_data, [(op.path, op.cid) for op in ops])
        new_rev = Tid(rev) if rev is not None else self.clock.next()
        commit, block, cid = create_commit(Did(did or self.did), data, new_rev, key or self.key)
        staged.put(cid, block)
        new_blocks = dict(staged.new.blocks)
        event_blocks = dict(new_blocks)
        if proof:
            # The proof is every block the inversion reads (what a consumer needs to run it).
            tracker = OverlayBlockStore(self.store)
            for c, b in new_blocks.items():
                tracker.new.put(c, b)
            record_ops = [RecordOp(op.path, op.prev, op.cid) for op in ops]
            assert invert_ops(NodeStore(tracker), data, record_ops) == prev_data
            event_blocks |= {c: self.store.get(c) for c in tracker.read if c not in new_blocks}
        if advance:
            for c, b in new_blocks.items():
                self.store.put(c, b)
            self.head = RepoHead(cid, commit, data)
        car = write_car(cid, [(cid, block), *((c, b) for c, b in event_blocks.items() if c != cid)])
        return CommitEvent(
            0, self.did, cid, new_rev, since, car, tuple(ops), TIME, prev_data=prev_data
        )

    def sync_event(self, key: PrivateKey | None = None) -> SyncEvent:
        """A #sync for the current head (re-signed with `key` to forge it)."""
        assert self.head.commit is not None
        root, block = self.head.root, self.store.get(self.head.root)
        if key is not None:
            _, block, root = create_commit(self.did, self.head.data, self.head.commit.rev, key)
        return SyncEvent(0, self.did, write_car(root, [(root, block)]), self.rev, TIME)

    def repo_car(self) -> bytes:
        """The full export, as getRepo serves it."""
        return write_car(self.head.root, export_blocks(self.store, self.head))


def unchecked_frame(t: str, body: dict[str, Any]) -> bytes:
    """A message frame with any body, bypassing the lexicon checks of `encode_frame`."""
    return cbor.encode({"op": 1, "t": t}) + cbor.encode(body)


class FakePds:
    """A PDS look-alike whose firehose sends exactly the frames a test queues."""

    def __init__(self, hostname: str = "fake-pds.test") -> None:
        self.hostname = hostname
        self.accounts: dict[str, FakeAccount] = {}
        # getRepo answers that replace an account's real export (bytes, or an HTTP status).
        self.repo_overrides: dict[str, bytes | int] = {}
        self.frames: list[tuple[int | None, bytes]] = []
        self.getrepo_calls = 0
        # While set and not yet fired, getRepo answers wait for it (then take the export).
        self.getrepo_gate: asyncio.Event | None = None
        self._seq = 0
        self._changed = asyncio.Condition()
        self._closed = False
        self.app = Starlette(
            routes=[
                Route("/xrpc/com.atproto.server.describeServer", self._describe),
                Route("/xrpc/com.atproto.sync.getRepo", self._get_repo),
                Route("/xrpc/com.atproto.sync.getLatestCommit", self._latest),
                Route("/.well-known/atproto-did", self._atproto_did),
                WebSocketRoute("/xrpc/com.atproto.sync.subscribeRepos", self._subscribe),
            ]
        )

    def add(self, account: FakeAccount) -> FakeAccount:
        self.accounts[account.did] = account
        return account

    async def emit(self, event: CommitEvent | SyncEvent | Any) -> int:
        """Queue a well-formed event with the next seq; returns that seq."""
        self._seq += 1
        event = type(event)(**{**event.__dict__, "seq": self._seq})
        await self._append(self._seq, encode_frame(event))
        return self._seq

    async def emit_raw(self, frame: bytes, seq: int | None = None) -> None:
        """Queue arbitrary bytes (garbage, malformed CBOR, unchecked frames)."""
        await self._append(seq, frame)

    async def close_streams(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    async def _append(self, seq: int | None, frame: bytes) -> None:
        async with self._changed:
            self.frames.append((seq, frame))
            self._changed.notify_all()

    async def _describe(self, request: Request) -> Response:
        return JSONResponse({"did": f"did:web:{self.hostname}", "availableUserDomains": [".test"]})

    async def _get_repo(self, request: Request) -> Response:
        self.getrepo_calls += 1
        if self.getrepo_gate is not None:
            await self.getrepo_gate.wait()
        did = request.query_params.get("did", "")
        override = self.repo_overrides.get(did)
        if isinstance(override, int):
            return JSONResponse({"error": "InternalServerError"}, status_code=override)
        if override is None and did not in self.accounts:
            return JSONResponse({"error": "RepoNotFound", "message": did}, status_code=400)
        body = override if override is not None else self.accounts[did].repo_car()
        return Response(body, media_type="application/vnd.ipld.car")

    async def _atproto_did(self, request: Request) -> Response:
        """Handle resolution as a PDS answers it for the handle named by `Host`."""
        host = request.headers.get("host", "").lower()
        for account in self.accounts.values():
            if f"at://{host}" in account.last_op.get("alsoKnownAs", []):
                return Response(account.did, media_type="text/plain")
        return Response("no such handle", status_code=404, media_type="text/plain")

    async def _latest(self, request: Request) -> Response:
        account = self.accounts.get(request.query_params.get("did", ""))
        if account is None:
            return JSONResponse({"error": "RepoNotFound"}, status_code=400)
        return JSONResponse({"cid": account.head.root.encode(), "rev": account.rev})

    async def _subscribe(self, websocket: WebSocket) -> None:
        cursor_text = websocket.query_params.get("cursor")
        cursor = int(cursor_text) if cursor_text and cursor_text.isdigit() else None
        await websocket.accept()
        sent = 0
        try:
            while True:
                async with self._changed:
                    while not self._closed and sent == len(self.frames):
                        await self._changed.wait()
                    batch, closed = self.frames[sent:], self._closed
                sent += len(batch)
                for seq, frame in batch:
                    if cursor is None or seq is None or seq > cursor:
                        await websocket.send_bytes(frame)
                if closed and sent == len(self.frames):
                    await websocket.close()
                    return
        except WebSocketDisconnect:
            return


@asynccontextmanager
async def serve_fake_pds(pds: FakePds) -> AsyncIterator[str]:
    """Serve `pds` with hypercorn on 127.0.0.1 and a free port; yields its base URL."""
    async with serving_in_loop(pds.app) as url:
        try:
            yield url
        finally:
            await pds.close_streams()
