"""The directory's HTTP routes, as in plc-server-openapi3.yaml and the spec's "Bulk Export"."""

from __future__ import annotations

import json
import re
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atcore.errors import InvalidSyntax
from atcore.identity.plc_data import did_document
from atcore.identity.plc_log import LogEntry, PlcState, parse_timestamp
from atcore.syntax.datetime import format_datetime
from plc.context import PlcContext
from plc.limits import check_incoming_op

DEFAULT_EXPORT_COUNT: Final = 10
MAX_EXPORT_COUNT: Final = 1000
_MAX_SEQ: Final = 2**63 - 1
# ASCII digits only (str.isdigit also takes '²' and other digits int() refuses), and few of
# them: a count over 1000 is clamped anyway, and no sequence number has more than 19.
_DIGITS_RE: Final = re.compile(r"[0-9]+")
_COUNT_RE: Final = re.compile(r"[0-9]{1,9}")


def _ctx(request: Request) -> PlcContext:
    ctx: PlcContext = request.app.state.ctx
    return ctx


async def _state(request: Request, *, live: bool) -> PlcState:
    """The DID's state: 404 if unknown; with `live`, 410 if tombstoned."""
    did = request.path_params["did"]
    state = await _ctx(request).ops.state(did)
    if state is None:
        raise HTTPException(404, f"DID not registered: {did}")
    if live and state.tombstoned:
        raise HTTPException(410, f"DID not available: {did}")
    return state


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    # Only a well-formed length can refuse early; the streamed count below is what holds.
    if _DIGITS_RE.fullmatch(declared) and (
        len(declared.lstrip("0")) > 9 or int(declared.lstrip("0") or "0") > limit
    ):
        raise HTTPException(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
    return bytes(body)


async def submit_operation(request: Request) -> Response:
    ctx = _ctx(request)
    body = await _read_body(request, ctx.config.max_body_bytes)
    try:
        op = json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(400, "request body is not valid JSON") from None
    await ctx.ops.submit(request.path_params["did"], check_incoming_op(op, ctx.config.max_op_bytes))
    return Response(status_code=200)


async def resolve_did(request: Request) -> Response:
    state = await _state(request, live=True)
    return JSONResponse(did_document(state.did, state.data()), media_type="application/did+ld+json")


async def get_data(request: Request) -> Response:
    state = await _state(request, live=True)
    return JSONResponse(state.data())


async def get_log(request: Request) -> Response:
    state = await _state(request, live=False)
    return JSONResponse([entry.operation for entry in state.chain])


async def get_last_op(request: Request) -> Response:
    state = await _state(request, live=False)
    return JSONResponse(state.last.operation)


async def get_audit_log(request: Request) -> Response:
    did = request.path_params["did"]
    log = await _ctx(request).ops.audit_log(did)
    if not log:
        raise HTTPException(404, f"DID not registered: {did}")
    return JSONResponse([entry.to_json() for entry in log])


def _export_params(request: Request) -> tuple[str | int | None, int]:
    raw_count = request.query_params.get("count", str(DEFAULT_EXPORT_COUNT))
    if _COUNT_RE.fullmatch(raw_count) is None or int(raw_count) < 1:
        raise HTTPException(
            400, "Invalid Query Parameter: count must be a positive integer of at most 9 digits"
        )
    count = min(int(raw_count), MAX_EXPORT_COUNT)
    raw_after = request.query_params.get("after")
    if raw_after is None:
        return None, count
    if _DIGITS_RE.fullmatch(raw_after):
        significant = raw_after.lstrip("0") or "0"
        if len(significant) > len(str(_MAX_SEQ)) or int(significant) > _MAX_SEQ:
            raise HTTPException(
                400, f"Invalid Query Parameter: after is over the largest sequence {_MAX_SEQ}"
            )
        return int(significant), count
    try:
        return format_datetime(parse_timestamp(raw_after)), count
    except (InvalidSyntax, ValueError):
        raise HTTPException(
            400, "Invalid Query Parameter: after must be a sequence number or a datetime"
        ) from None


def _export_line(seq: int, entry: LogEntry, sequenced: bool) -> str:
    line: dict[str, Any] = entry.to_json()
    if sequenced:
        # The sequenced format carries `seq` and `type` instead of `nullified`.
        del line["nullified"]
        line = {"type": "sequenced_op", **line, "seq": seq}
    return json.dumps(line, separators=(",", ":"))


async def export(request: Request) -> Response:
    after, count = _export_params(request)
    page = await _ctx(request).ops.export(after, count)
    sequenced = isinstance(after, int)
    body = "\n".join(_export_line(seq, entry, sequenced) for seq, entry in page)
    return Response(body, media_type="application/jsonlines")


async def health(request: Request) -> Response:
    return JSONResponse({"version": _ctx(request).version})


ROUTES: Final = [
    Route("/_health", health, methods=["GET"]),
    Route("/export", export, methods=["GET"]),
    Route("/{did}", resolve_did, methods=["GET"]),
    Route("/{did}", submit_operation, methods=["POST"]),
    Route("/{did}/data", get_data, methods=["GET"]),
    Route("/{did}/log", get_log, methods=["GET"]),
    Route("/{did}/log/last", get_last_op, methods=["GET"]),
    Route("/{did}/log/audit", get_audit_log, methods=["GET"]),
]
