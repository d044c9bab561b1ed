"""PlcClient against a real HTTP server on 127.0.0.1 standing in for a PLC directory."""

from __future__ import annotations

import json

import httpx
import pytest

from atcore.errors import (
    DidDeactivated,
    DidNotFound,
    InvalidSyntax,
    PlcRequestError,
    ResolutionFailed,
)
from atcore.identity.plc_client import PlcClient
from tests.atcore.identity.support import (
    PLC_DID,
    LocalServer,
    reply,
)

# --- PLC client ---


async def test_plc_client(server: LocalServer, http: httpx.AsyncClient) -> None:
    op = {"type": "plc_tombstone", "prev": "bafy", "sig": "x"}
    entry = {"did": PLC_DID, "operation": op, "cid": "bafy", "nullified": False}
    server.route("plc.test", f"/{PLC_DID}", reply(200, ""))
    server.route("plc.test", f"/{PLC_DID}/log/last", reply(200, op))
    server.route("plc.test", f"/{PLC_DID}/log", reply(200, [op]))
    server.route("plc.test", f"/{PLC_DID}/log/audit", reply(200, [entry]))
    server.route("plc.test", f"/{PLC_DID}/data", reply(200, {"rotationKeys": []}))
    client = PlcClient(f"http://plc.test:{server.port}/", http)
    await client.submit(PLC_DID, op)
    assert server.requests[-1][:3] == ("POST", "plc.test", f"/{PLC_DID}")
    assert json.loads(server.requests[-1][3]) == op
    assert await client.get_last_op(PLC_DID) == op
    assert await client.get_op_log(PLC_DID) == [op]
    assert await client.get_audit_log(PLC_DID) == [entry]
    assert await client.get_document_data(PLC_DID) == {"rotationKeys": []}


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (400, {"message": "Invalid Signature"}, PlcRequestError, "400: Invalid Signature"),
        (400, "plain words", PlcRequestError, "plain words"),
        (404, {"message": "DID not registered"}, DidNotFound, "DID not registered"),
        (410, {"message": "DID not available"}, DidDeactivated, "DID not available"),
        (503, {"error": "Overloaded"}, ResolutionFailed, "503 .*Overloaded"),
    ],
)
async def test_plc_client_errors(
    server: LocalServer,
    http: httpx.AsyncClient,
    status: int,
    body: object,
    error: type[Exception],
    message: str,
) -> None:
    server.route("plc.test", f"/{PLC_DID}", reply(status, body))
    server.route("plc.test", f"/{PLC_DID}/log/last", reply(status, body))
    client = PlcClient(f"http://plc.test:{server.port}", http)
    with pytest.raises(error, match=message):
        await client.submit(PLC_DID, {"type": "plc_tombstone"})
    with pytest.raises(error, match=message):
        await client.get_last_op(PLC_DID)


async def test_plc_client_checks_its_input_and_answers(
    server: LocalServer, http: httpx.AsyncClient
) -> None:
    server.route("plc.test", f"/{PLC_DID}/log/audit", reply(200, {"not": "a list"}))
    client = PlcClient(f"http://plc.test:{server.port}", http)
    with pytest.raises(InvalidSyntax):
        await client.get_audit_log("did:plc:../../admin")
    with pytest.raises(ResolutionFailed, match="not a JSON list"):
        await client.get_audit_log(PLC_DID)
    assert [r[2] for r in server.requests] == [f"/{PLC_DID}/log/audit"]
