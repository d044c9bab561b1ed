from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from atcore.cid import cid_for_cbor, cid_for_raw
from atcore.errors import DecodeError, InvalidSyntax, LexiconNotFound
from atcore.frames import IdentityEvent, InfoEvent, encode_frame
from atcore.lexicon import Catalog
from atcore.syntax.did import parse_did
from atcore.xrpc.client import XrpcClient, XrpcClientError
from atcore.xrpc.cors import cors_middleware
from atcore.xrpc.errors import (
    AuthRequired,
    InvalidRequest,
    NotFound,
    RateLimitExceeded,
    XrpcError,
    error_body,
)
from atcore.xrpc.failures import FailureMiddleware
from atcore.xrpc.router import Methods, SubscriptionRequest, XrpcRequest, XrpcResponse, XrpcRouter
from atcore.xrpc.server import mount
from atcore.xrpc.stream import StreamError, stream_url, subscribe
from tests.servers import serving_in_loop

CATALOG = Catalog.load_builtin()
xrpc = Methods()
seen: dict[str, Any] = {}


async def bearer_auth(conn: HTTPConnection) -> str:
    header = conn.headers.get("authorization", "")
    if header != "Bearer good":
        raise AuthRequired("Bad token", "InvalidToken", {"www-authenticate": 'Bearer realm="x"'})
    return "did:plc:caller"


async def one_per_request(req: XrpcRequest) -> dict[str, str]:
    left = 2 - len(req.input["writes"])
    if left < 0:
        raise RateLimitExceeded(headers={"retry-after": "7", "ratelimit-remaining": "0"})
    return {"ratelimit-remaining": str(left)}


@xrpc.query("com.atproto.repo.getRecord")
async def get_record(req: XrpcRequest) -> dict[str, Any]:
    rkey = req.params["rkey"]
    if rkey == "syntax":
        parse_did("not-a-did")
    if rkey == "crash":
        raise RuntimeError("secret internal detail")
    if rkey == "missing":
        raise InvalidRequest(f"Could not locate record: {rkey}", "RecordNotFound")
    if rkey == "gone":
        raise NotFound()
    value = {"text": "hi", "link": cid_for_cbor(b"a"), "raw": b"\x01\x02"}
    uri = f"at://{req.params['repo']}/{req.params['collection']}/{rkey}"
    if rkey == "badoutput":
        return {"value": value}
    return {"uri": uri, "value": value}


@xrpc.query("com.atproto.repo.listRecords")
async def list_records(req: XrpcRequest) -> dict[str, Any]:
    return {"records": [], "echo": req.params}


@xrpc.query("app.bsky.actor.getProfiles")
async def get_profiles(req: XrpcRequest) -> dict[str, Any]:
    return {"profiles": [], "actors": req.params["actors"]}


@xrpc.query("com.atproto.sync.getBlocks")
async def get_blocks(req: XrpcRequest) -> XrpcResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"car-"
        yield b"bytes"

    return XrpcResponse(chunks(), "application/vnd.ipld.car", {"atproto-repo-rev": "3abc"})


@xrpc.procedure("com.atproto.repo.createRecord", auth=bearer_auth)
async def create_record(req: XrpcRequest) -> dict[str, Any]:
    seen["create"] = req
    return {"uri": "at://did:plc:caller/app.bsky.feed.post/3k", "cid": "bafyfake"}


@xrpc.procedure("com.atproto.repo.applyWrites", auth=bearer_auth, rate_limit=one_per_request)
async def apply_writes(req: XrpcRequest) -> None:
    if req.input["repo"] != "did:plc:caller":
        raise InvalidRequest("Could not find repo", "RepoNotFound")


@xrpc.procedure("com.atproto.repo.uploadBlob", max_body=64)
async def upload_blob(req: XrpcRequest) -> dict[str, Any]:
    data = await req.read()
    seen["blob"] = (req.encoding, data)
    blob = {"$type": "blob", "ref": cid_for_raw(data), "mimeType": req.encoding, "size": len(data)}
    return {"blob": blob}


@xrpc.procedure("com.atproto.server.deleteSession")
async def delete_session(req: XrpcRequest) -> Response:
    return PlainTextResponse("bye", status_code=202)


@xrpc.subscription("com.atproto.sync.subscribeRepos")
async def subscribe_repos(sub: SubscriptionRequest) -> None:
    cursor = sub.params.get("cursor")
    if cursor is not None and cursor > 100:
        raise XrpcError(400, "FutureCursor", "Cursor in the future.")
    await sub.websocket.send_bytes(encode_frame(InfoEvent("OutdatedCursor", "old")))
    identity = IdentityEvent(7, "did:plc:abc", "2024-01-01T00:00:00Z")
    await sub.websocket.send_bytes(encode_frame(identity))


# A subscription with nothing to send: it waits until the server notices the client has left.
waiting: dict[str, asyncio.Event] = {}


@xrpc.subscription("com.atproto.label.subscribeLabels")
async def subscribe_labels(sub: SubscriptionRequest) -> None:
    waiting["started"].set()
    try:
        await asyncio.Event().wait()
    finally:
        waiting["ended"].set()


def make_app(**options: Any) -> Starlette:
    router = XrpcRouter(CATALOG, [xrpc], **options)
    return Starlette(routes=mount(router), middleware=[cors_middleware()])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(json_limit=4096))
    async with httpx.AsyncClient(transport=transport, base_url="http://pds.test") as client:
        yield client


GET_RECORD = "/xrpc/com.atproto.repo.getRecord"
CREATE_RECORD = "/xrpc/com.atproto.repo.createRecord"
CID_TEXT = cid_for_raw(b"block").encode()
RECORD_PARAMS = {"repo": "did:plc:abc", "collection": "app.bsky.feed.post"}


async def test_query_returns_json_with_data_model_conventions(http: httpx.AsyncClient) -> None:
    response = await http.get(GET_RECORD, params={**RECORD_PARAMS, "rkey": "3k"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["uri"] == "at://did:plc:abc/app.bsky.feed.post/3k"
    assert body["value"]["link"] == {"$link": cid_for_cbor(b"a").encode()}
    assert body["value"]["raw"] == {"$bytes": "AQI"}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"collection": "app.bsky.feed.post", "rkey": "x"}, "Params/repo is required"),
        ({**RECORD_PARAMS, "rkey": "x", "repo": "not a handle"}, "Params/repo"),
        ({**RECORD_PARAMS, "rkey": "x", "collection": "nope"}, "Params/collection"),
    ],
)
async def test_bad_params_are_400_naming_the_param(
    http: httpx.AsyncClient, params: dict[str, str], fragment: str
) -> None:
    response = await http.get(GET_RECORD, params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidRequest"
    assert fragment in response.json()["message"]


async def test_params_are_coerced_defaulted_and_bounded(http: httpx.AsyncClient) -> None:
    url = "/xrpc/com.atproto.repo.listRecords"
    echo = (await http.get(url, params=RECORD_PARAMS)).json()["echo"]
    assert echo["limit"] == 50
    echo = (await http.get(url, params={**RECORD_PARAMS, "limit": "7", "reverse": "true"})).json()
    assert echo["echo"]["limit"] == 7 and echo["echo"]["reverse"] is True
    for bad in ("0", "101", "ten", "1.5"):
        response = await http.get(url, params={**RECORD_PARAMS, "limit": bad})
        assert response.status_code == 400, bad
        assert "Params/limit" in response.json()["message"]
    response = await http.get(url, params={**RECORD_PARAMS, "reverse": "yes"})
    assert response.status_code == 400


async def test_repeated_params_make_arrays(http: httpx.AsyncClient) -> None:
    actors = [("actors", "alice.test"), ("actors", "bob.test")]
    response = await http.get("/xrpc/app.bsky.actor.getProfiles", params=actors)
    assert response.json()["actors"] == ["alice.test", "bob.test"]


@pytest.mark.parametrize(
    ("verb", "path", "status", "error", "message"),
    [
        ("GET", CREATE_RECORD, 400, "InvalidRequest", "(GET) expected POST"),
        ("POST", GET_RECORD, 400, "InvalidRequest", "(POST) expected GET"),
        ("GET", "/xrpc/com.example.nothing.here", 501, "MethodNotImplemented", None),
        ("GET", "/xrpc/app.bsky.feed.getTimeline", 501, "MethodNotImplemented", None),
        ("GET", "/xrpc/not_an_nsid", 400, "InvalidRequest", "invalid xrpc path"),
        ("GET", "/xrpc/com.atproto.sync.subscribeRepos", 426, "InvalidRequest", "websocket"),
        ("POST", "/xrpc/com.atproto.sync.subscribeRepos", 405, "InvalidRequest", None),
    ],
)
async def test_routing_errors(
    http: httpx.AsyncClient,
    verb: str,
    path: str,
    status: int,
    error: str,
    message: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        response = await http.request(verb, path)
    # None of these is a server failure: a client repeating them must not fill the log.
    assert not caplog.records
    assert response.status_code == status
    assert response.json()["error"] == error
    if message:
        assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("rkey", "status", "body"),
    [
        ("syntax", 400, {"error": "InvalidRequest"}),
        ("missing", 400, error_body("RecordNotFound", "Could not locate record: missing")),
        ("gone", 404, error_body("NotFound", "Not Found")),
        ("crash", 500, {"error": "InternalServerError"}),  # the message: below
    ],
)
async def test_handler_errors_map_to_json(
    http: httpx.AsyncClient, rkey: str, status: int, body: dict[str, str]
) -> None:
    response = await http.get(GET_RECORD, params={**RECORD_PARAMS, "rkey": rkey})
    assert response.status_code == status
    assert response.json().items() >= body.items()


async def test_domain_error_keeps_its_message(http: httpx.AsyncClient) -> None:
    response = await http.get(GET_RECORD, params={**RECORD_PARAMS, "rkey": "syntax"})
    with pytest.raises(InvalidSyntax) as raised:
        parse_did("not-a-did")
    assert response.json()["message"] == str(raised.value)


async def test_internal_error_is_logged_not_sent(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="atcore.xrpc"):
        response = await http.get(GET_RECORD, params={**RECORD_PARAMS, "rkey": "crash"})
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    rid = one_failure_logged(response, caplog)
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"request {rid} GET /xrpc/com.atproto.repo.getRecord failed" in line
    assert "RuntimeError: secret internal detail at atcore/test_xrpc.py:" in line


def one_failure_logged(response: httpx.Response, caplog: pytest.LogCaptureFixture) -> str:
    """The request id of a 500 answer, checked to be named by exactly one one-line log record
    with no traceback attached."""
    body = response.json()
    assert body["error"] == "InternalServerError"
    prefix = "Internal Server Error, request id "
    assert body["message"].startswith(prefix)
    rid = body["message"][len(prefix) :]
    assert len(rid) == 16
    records = [r for r in caplog.records if r.name == "atcore.xrpc"]
    assert len(records) == 1 and records[0].exc_info is None
    line = records[0].getMessage()
    assert "\n" not in line and f"request {rid} " in line
    return rid


@xrpc.procedure("com.atproto.repo.deleteRecord")
async def delete_record(req: XrpcRequest) -> None:
    raise XrpcError(503, "NotEnoughResources", "the disk is full\nsee the operator")


def raising_app() -> Starlette:
    """A plain route that raises (outside any XRPC handler), behind the failure middleware."""

    async def broken(request: Request) -> Response:
        raise KeyError("nobody caught this\nsecond line")

    router = XrpcRouter(CATALOG, [xrpc])
    routes = [Route("/broken", broken), *mount(router)]
    return Starlette(routes=routes, middleware=[cors_middleware(), Middleware(FailureMiddleware)])


async def test_an_escaped_exception_is_a_json_500_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = httpx.ASGITransport(app=raising_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://x.test") as client:
        with caplog.at_level(logging.ERROR):
            response = await client.get("/broken", headers={"origin": "https://app.example"})
    assert response.status_code == 500
    assert response.headers["access-control-allow-origin"] == "*"
    rid = one_failure_logged(response, caplog)
    line = caplog.records[0].getMessage()
    assert f"request {rid} GET /broken failed in the app: KeyError:" in line
    assert "nobody caught this" in line
    # Nothing else logged it (Starlette's last-resort handler never saw it).
    assert [r.name for r in caplog.records] == ["atcore.xrpc"]


async def test_server_side_xrpc_errors_are_logged_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = httpx.ASGITransport(app=raising_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://x.test") as client:
        with caplog.at_level(logging.ERROR):
            body = {"repo": "did:plc:abc", "collection": "app.bsky.feed.post", "rkey": "3k"}
            response = await client.post("/xrpc/com.atproto.repo.deleteRecord", json=body)
    assert response.status_code == 503
    assert response.json()["message"] == "the disk is full\nsee the operator"
    (record,) = caplog.records
    assert record.exc_info is None
    assert "NotEnoughResources: the disk is full see the operator" in record.getMessage()


async def test_auth_failure_and_success(http: httpx.AsyncClient) -> None:
    url = "/xrpc/com.atproto.repo.createRecord"
    record = {"repo": "did:plc:caller", "collection": "app.bsky.feed.post", "record": {"text": "x"}}
    denied = await http.post(url, json=record)
    assert denied.status_code == 401
    assert denied.json() == error_body("InvalidToken", "Bad token")
    assert denied.headers["www-authenticate"] == 'Bearer realm="x"'
    record["record"] = {"text": "x", "ref": {"$link": cid_for_cbor(b"1").encode()}}
    ok = await http.post(url, json=record, headers={"authorization": "Bearer good"})
    assert ok.status_code == 200
    req = seen["create"]
    assert req.auth == "did:plc:caller" and req.encoding == "application/json"
    assert req.input["record"]["ref"] == cid_for_cbor(b"1")


@pytest.mark.parametrize(
    ("content", "headers", "fragment"),
    [
        (b'{"repo": "did:plc:caller"}', {"content-type": "application/json"}, "Input/collection"),
        (b"{not json", {"content-type": "application/json"}, "not valid JSON"),
        (b'{"a": 1.5}', {"content-type": "application/json"}, "floats"),
        (b"{}", {"content-type": "text/plain"}, "Wrong request encoding"),
        (b"{}", {}, "Content-Type"),
        (None, {}, "A request body is expected"),
        (b"{}", {"content-type": "application/json", "content-encoding": "br"}, "Encoding"),
        (b"[" * 200 + b"]" * 200, {"content-type": "application/json"}, "deeper than 128"),
        (b"[" * 1500 + b"]" * 1500, {"content-type": "application/json"}, "nests too deeply"),
    ],
)
async def test_bad_procedure_input_is_400(
    http: httpx.AsyncClient, content: bytes | None, headers: dict[str, str], fragment: str
) -> None:
    headers = {"authorization": "Bearer good", **headers}
    response = await http.post(
        "/xrpc/com.atproto.repo.createRecord", content=content, headers=headers
    )
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidRequest"
    assert fragment in response.json()["message"]


async def test_body_on_a_method_without_input_is_400(http: httpx.AsyncClient) -> None:
    url = "/xrpc/com.atproto.server.deleteSession"
    response = await http.post(url, json={"x": 1})
    assert response.status_code == 400
    assert "none was expected" in response.json()["message"]
    response = await http.post(url)
    assert (response.status_code, response.text) == (202, "bye")


async def test_rate_limit_sees_input_and_sets_headers(http: httpx.AsyncClient) -> None:
    url = "/xrpc/com.atproto.repo.applyWrites"
    auth = {"authorization": "Bearer good"}
    write = {"$type": "com.atproto.repo.applyWrites#delete", "collection": "a.b.c", "rkey": "k"}
    repo = "did:plc:caller"
    ok = await http.post(url, json={"repo": repo, "writes": [write]}, headers=auth)
    assert (ok.status_code, ok.content) == (200, b"")
    assert ok.headers["ratelimit-remaining"] == "1"
    # The limit's headers are on the handler's error answers too.
    failed = await http.post(url, json={"repo": "did:plc:x", "writes": [write] * 2}, headers=auth)
    assert (failed.status_code, failed.json()["error"]) == (400, "RepoNotFound")
    assert failed.headers["ratelimit-remaining"] == "0"
    limited = await http.post(url, json={"repo": repo, "writes": [write] * 3}, headers=auth)
    assert limited.status_code == 429
    assert limited.json()["error"] == "RateLimitExceeded"
    assert limited.headers["retry-after"] == "7"


async def test_raw_body_and_payload_limits(http: httpx.AsyncClient) -> None:
    url = "/xrpc/com.atproto.repo.uploadBlob"
    ok = await http.post(url, content=b"\x89PNG", headers={"content-type": "image/png"})
    assert ok.status_code == 200
    assert seen["blob"] == ("image/png", b"\x89PNG")
    assert ok.json()["blob"]["ref"] == {"$link": cid_for_raw(b"\x89PNG").encode()}
    big = await http.post(url, content=b"x" * 65, headers={"content-type": "image/png"})
    assert big.status_code == 413
    assert big.json()["error"] == "PayloadTooLarge"

    async def undeclared_length() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 10

    chunked = await http.post(url, content=undeclared_length(), headers={"content-type": "a/b"})
    assert chunked.status_code == 413


async def test_json_body_limit(http: httpx.AsyncClient) -> None:
    record = {"repo": "did:plc:caller", "collection": "a.b.c", "record": {"t": "x" * 5000}}
    response = await http.post(
        "/xrpc/com.atproto.repo.createRecord", json=record, headers={"authorization": "Bearer good"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"


async def test_streamed_binary_response(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/xrpc/com.atproto.sync.getBlocks", params={"did": "did:plc:abc", "cids": CID_TEXT}
    )
    assert response.status_code == 200
    assert response.content == b"car-bytes"
    assert response.headers["content-type"] == "application/vnd.ipld.car"
    assert response.headers["atproto-repo-rev"] == "3abc"


async def test_cors_preflight_and_simple_request(http: httpx.AsyncClient) -> None:
    asked = "authorization, atproto-proxy, atproto-accept-labelers, dpop, content-type"
    preflight = await http.options(
        "/xrpc/com.atproto.repo.createRecord",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": asked,
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "atproto-proxy", "atproto-accept-labelers", "dpop"} <= allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    simple = await http.get(
        GET_RECORD,
        params={**RECORD_PARAMS, "rkey": "gone"},
        headers={"origin": "https://a.example"},
    )
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "ratelimit-remaining" in simple.headers["access-control-expose-headers"]


async def test_output_validation_flag() -> None:
    params = {**RECORD_PARAMS, "rkey": "badoutput"}
    for validate, status in ((False, 200), (True, 500)):
        transport = httpx.ASGITransport(app=make_app(validate_output=validate))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get(GET_RECORD, params=params)).status_code == status


async def test_fallback_gets_unserved_methods_only() -> None:
    async def proxy(request: Request, nsid: str) -> Response:
        return PlainTextResponse(f"proxied {nsid}", status_code=502)

    transport = httpx.ASGITransport(app=make_app(fallback=proxy))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        client = XrpcClient("http://t", http)
        with pytest.raises(XrpcClientError) as raised:
            await client.query("app.bsky.feed.getTimeline")
        assert (raised.value.status, raised.value.error) == (502, "UpstreamFailure")
        wrong_verb = await http.post("/xrpc/app.bsky.feed.getTimeline")
        assert wrong_verb.status_code == 400
        served = await client.query("com.atproto.repo.listRecords", RECORD_PARAMS)
        assert served["records"] == []


def test_registration_is_checked_against_lexicons() -> None:
    methods = Methods()
    methods.query("com.atproto.repo.createRecord")(get_record)
    with pytest.raises(ValueError, match="procedure"):
        XrpcRouter(CATALOG, [methods])
    with pytest.raises(ValueError, match="twice"):
        methods.query("com.atproto.repo.createRecord")(get_record)
    with pytest.raises(ValueError, match="twice"):
        XrpcRouter(CATALOG, [xrpc, xrpc])
    unknown = Methods()
    unknown.query("com.example.unknown")(get_record)
    with pytest.raises(LexiconNotFound):
        XrpcRouter(CATALOG, [unknown])
    with pytest.raises(InvalidSyntax):
        Methods().query("not an nsid")


async def test_client_over_asgi(http: httpx.AsyncClient) -> None:
    client = XrpcClient("http://pds.test/", http, auth_header="Bearer good")
    listed = await client.query("com.atproto.repo.listRecords", {**RECORD_PARAMS, "reverse": True})
    assert listed["echo"]["reverse"] is True
    profiles = await client.query("app.bsky.actor.getProfiles", {"actors": ["a.test", "b.test"]})
    assert profiles["actors"] == ["a.test", "b.test"]
    car = await client.query("com.atproto.sync.getBlocks", {"did": "did:plc:a", "cids": [CID_TEXT]})
    assert car == b"car-bytes"
    typed = await client.query_bytes(
        "com.atproto.sync.getBlocks", {"did": "did:plc:a", "cids": [CID_TEXT]}
    )
    assert typed == (b"car-bytes", "application/vnd.ipld.car")
    link = cid_for_cbor(b"r")
    record = {"repo": "did:plc:caller", "collection": "a.b.c", "record": {"ref": link}}
    created = await client.procedure("com.atproto.repo.createRecord", record)
    assert created["uri"].startswith("at://") and seen["create"].input["record"]["ref"] == link
    uploaded = await client.procedure("com.atproto.repo.uploadBlob", b"abc", encoding="text/plain")
    assert uploaded["blob"]["size"] == 3
    with pytest.raises(XrpcClientError) as raised:
        await client.query("com.atproto.repo.getRecord", {**RECORD_PARAMS, "rkey": "missing"})
    assert (raised.value.status, raised.value.error) == (400, "RecordNotFound")
    assert raised.value.message == "Could not locate record: missing"
    with pytest.raises(ValueError, match="encoding"):
        await client.procedure("com.atproto.repo.uploadBlob", b"abc")
    small = XrpcClient("http://pds.test", http, max_response=10)
    with pytest.raises(XrpcClientError, match="larger than 10 bytes"):
        await small.query("com.atproto.repo.listRecords", RECORD_PARAMS)


def test_stream_url() -> None:
    assert stream_url("https://h.example/xrpc/a.b.c", {"cursor": 5, "x": None}) == (
        "wss://h.example/xrpc/a.b.c?cursor=5"
    )
    assert stream_url("ws://h:1/xrpc/a.b.c?a=1", {"f": False}) == "ws://h:1/xrpc/a.b.c?a=1&f=false"
    with pytest.raises(ValueError):
        stream_url("ftp://h/x")


def test_error_classes() -> None:
    assert XrpcError(502).body() == error_body("UpstreamFailure", "Upstream Failure")
    assert XrpcError(500, message="db down").body()["message"] == "Internal Server Error"
    assert AuthRequired("expired", "ExpiredToken").status == 401
    with pytest.raises(ValueError):
        XrpcError(200)


@pytest.fixture
async def live_url() -> AsyncIterator[str]:
    async with serving_in_loop(make_app()) as url:
        yield url


@pytest.mark.integration
async def test_live_server_with_client_and_subscription(live_url: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        client = XrpcClient(live_url, http)
        record = await client.query("com.atproto.repo.getRecord", {**RECORD_PARAMS, "rkey": "3k"})
        assert record["value"]["text"] == "hi"
        with pytest.raises(XrpcClientError) as raised:
            await client.procedure("com.atproto.repo.uploadBlob", b"z" * 100, encoding="a/b")
        assert (raised.value.status, raised.value.error) == (413, "PayloadTooLarge")

    url = f"{live_url}/xrpc/com.atproto.sync.subscribeRepos"
    events = [event async for event in subscribe(url, max_frame_size=1 << 16)]
    assert events == [
        InfoEvent("OutdatedCursor", "old"),
        IdentityEvent(7, "did:plc:abc", "2024-01-01T00:00:00Z"),
    ]
    with pytest.raises(StreamError) as future:
        _ = [event async for event in subscribe(url, {"cursor": 101})]
    assert (future.value.error, future.value.message) == ("FutureCursor", "Cursor in the future.")
    with pytest.raises(StreamError) as bad_param:
        _ = [event async for event in subscribe(url, {"cursor": "soon"})]
    assert bad_param.value.error == "InvalidRequest" and "Params/cursor" in str(bad_param.value)
    # A cursor is a 64-bit integer: the largest is a cursor (in the future), one more is not.
    with pytest.raises(StreamError) as largest:
        _ = [event async for event in subscribe(url, {"cursor": str(2**63 - 1)})]
    assert largest.value.error == "FutureCursor"
    with pytest.raises(StreamError) as past_int64:
        _ = [event async for event in subscribe(url, {"cursor": str(2**63)})]
    assert past_int64.value.error == "InvalidRequest" and "out of range" in str(past_int64.value)
    with pytest.raises(StreamError) as refused:
        _ = [event async for event in subscribe(f"{live_url}/xrpc/com.example.nothing")]
    assert refused.value.status == 403
    with pytest.raises(DecodeError):
        _ = [event async for event in subscribe(url, max_frame_size=10)]


@pytest.mark.integration
async def test_idle_subscription_ends_when_the_client_leaves(live_url: str) -> None:
    """A handler waiting for events is cancelled once the client goes (it used to wait for its
    next send to fail, holding the connection and the server's shutdown)."""
    import websockets

    waiting.update(started=asyncio.Event(), ended=asyncio.Event())
    url = stream_url(f"{live_url}/xrpc/com.atproto.label.subscribeLabels", {})
    async with websockets.connect(url) as ws:
        await asyncio.wait_for(waiting["started"].wait(), 5)
        await ws.send(b"frames from the client are ignored")
        await asyncio.sleep(0.05)
        assert not waiting["ended"].is_set()
    await asyncio.wait_for(waiting["ended"].wait(), 2)
