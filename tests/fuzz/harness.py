"""Driving a service's app in-process with generated hostile requests and judging the answers.

Every endpoint is found in the app itself: its XRPC router's methods and subscriptions, the NSIDs
its fallback proxies, and its other routes, so a method added later is fuzzed without anyone
listing it here. The app is wrapped in FailureMiddleware as `runtime.serve` serves it, and runs
in an event loop of its own that the (synchronous) hypothesis tests drive one request at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning
from starlette.routing import Route, WebSocketRoute

import atcore
from atcore.errors import LexiconNotFound
from atcore.xrpc.router import XrpcRouter
from atcore.xrpc.subscription import SubscriptionEndpoint
from runtime.serve import with_failure_middleware
from tests.fuzz import hostile, typed

T = TypeVar("T")
# Examples per endpoint: small in CI (the whole suite stays near a minute), large for a soak run.
EXAMPLES = int(os.environ.get("SKYLOFT_FUZZ_EXAMPLES", "20"))
REQUEST_TIMEOUT = 30.0
ErrorShape = Literal["xrpc", "plc", "any"]


@dataclass(frozen=True)
class Endpoint:
    """Something to fuzz: a path (with `{name}` parameters), the verb it answers, and the
    lexicon of its params and input when it is an XRPC method."""

    name: str
    path: str
    verb: str
    params: dict[str, Any] | None = None
    input: dict[str, Any] | None = None
    input_encoding: str | None = None
    websocket: bool = False
    nsids: tuple[str, ...] = ()  # for the fallback: the NSIDs it is asked for
    # A router without a fallback answers an NSID it does not serve 501 MethodNotImplemented,
    # as the reference's xrpc-server does: the one 5xx that is an answer, not a failure.
    not_implemented: bool = False


@dataclass
class Outcome:
    status: int
    body: bytes
    log_lines: list[str]


@dataclass
class Target:
    """A running app, its own event loop, and the live values hostile input may name."""

    app: Any
    errors: ErrorShape
    live_strings: Callable[[], list[str]] = list
    live_auth: Callable[[], list[bytes]] = list
    # Endpoint name -> (path, body) pairs it is sent besides the generic ones (signed PLC ops).
    special: dict[str, st.SearchStrategy[tuple[str, bytes]]] = field(default_factory=dict)
    # Plausible values by lexicon format that the service knows (its accounts, records).
    live_values: Callable[[], dict[str, list[str]]] = dict
    # Endpoint name -> credentials for it alone (a service-auth token names its method).
    endpoint_auth: Callable[[str], list[bytes]] = lambda name: []
    # Endpoint name -> a lexicon-shaped `parameters` for a route without a lexicon.
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Websocket endpoint name -> messages the client sends once the socket is open.
    messages: dict[str, st.SearchStrategy[bytes | None]] = field(default_factory=dict)
    # Path prefixes whose 4xx answers must be JSON error bodies (all of them on the PLC).
    error_paths: tuple[str, ...] = ("/xrpc/", "/admin/")
    # Whether 502 UpstreamFailure is an answer: a service that fetches from hosts a request
    # names (the appview's image service, from a DID's PDS) says so when the host is down.
    upstream_failures: bool = False
    # Called after a request that succeeded in changing something: credentials may be gone.
    after_change: Callable[[], Awaitable[None]] | None = None
    client: httpx.AsyncClient = field(init=False)
    loop: asyncio.AbstractEventLoop = field(init=False)

    def __post_init__(self) -> None:
        self.app = with_failure_middleware(self.app)
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://fuzz.test")

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(work, REQUEST_TIMEOUT))


@contextmanager
def running(
    make: Callable[[], AbstractAsyncContextManager[Target]],
) -> Iterator[Target]:
    """Enter `make()` (which starts the app's lifespan) in a new event loop; yield the target."""
    loop = asyncio.new_event_loop()
    manager = make()
    try:
        target = loop.run_until_complete(manager.__aenter__())
        target.loop = loop
        yield target
        loop.run_until_complete(target.client.aclose())
        loop.run_until_complete(manager.__aexit__(None, None, None))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def endpoints(app: Any) -> list[Endpoint]:
    """Every endpoint `app` serves, found in its routes."""
    found: list[Endpoint] = []
    for route in app.routes:
        if isinstance(route, Route) and isinstance(
            getattr(route.endpoint, "router", None), XrpcRouter
        ):
            found += _xrpc_endpoints(route.endpoint.router)
        elif isinstance(route, Route):
            for verb in sorted(route.methods or {"GET"}):
                if verb != "HEAD":
                    body = "application/json" if verb == "POST" else None
                    name = f"{verb} {route.path}"
                    found.append(Endpoint(name, route.path, verb, input_encoding=body))
        elif isinstance(route, WebSocketRoute):
            if not isinstance(route.endpoint, SubscriptionEndpoint):  # those come with the router
                found.append(Endpoint(f"WS {route.path}", route.path, "GET", websocket=True))
                found.append(Endpoint(f"GET {route.path}", route.path, "GET"))
        else:
            raise AssertionError(f"a route the fuzzer does not know how to reach: {route!r}")
    return found


def _xrpc_endpoints(router: XrpcRouter) -> list[Endpoint]:
    found = []
    for nsid, method in sorted(router.methods.items()):
        schema = router.catalog.get_def(nsid)
        verb = "GET" if method.kind == "query" else "POST"
        declared = schema.get("input") or {}
        found.append(
            Endpoint(
                nsid,
                f"/xrpc/{nsid}",
                verb,
                schema.get("parameters"),
                declared.get("schema"),
                declared.get("encoding"),
            )
        )
    for nsid in sorted(router.subscriptions):
        schema = router.catalog.get_def(nsid)
        found.append(
            Endpoint(nsid, f"/xrpc/{nsid}", "GET", schema.get("parameters"), websocket=True)
        )
        found.append(Endpoint(f"{nsid} (http)", f"/xrpc/{nsid}", "GET", schema.get("parameters")))
    served = set(router.methods) | set(router.subscriptions)
    others = tuple(n for n in _catalog_methods(router) if n not in served)
    unserved = {"nsids": others, "not_implemented": router.fallback is None}
    found.append(Endpoint("unserved NSIDs", "/xrpc/{nsid}", "GET", **unserved))
    json_body = {"input_encoding": "application/json"}
    found.append(Endpoint("unserved NSIDs (POST)", "/xrpc/{nsid}", "POST", **json_body, **unserved))
    return found


def _catalog_methods(router: XrpcRouter) -> list[str]:
    """Every query and procedure NSID of the vendored lexicons (what a fallback may be asked)."""
    root = Path(atcore.__file__).parent / "lexicons"
    nsids = []
    for path in sorted(root.rglob("*.json")):
        nsid = ".".join(path.relative_to(root).with_suffix("").parts)
        try:
            kind = router.catalog.get_def(nsid)["type"]
        except LexiconNotFound:  # a file of shared definitions
            continue
        if kind in ("query", "procedure"):
            nsids.append(nsid)
    return nsids


def requests(endpoint: Endpoint, target: Target) -> st.SearchStrategy[hostile.Request]:
    """Hostile requests aimed at `endpoint`: mostly its own verb, path and lexicon types, with
    valid credentials as often as not."""
    strings = hostile.hostile_strings(target.live_strings)
    records = st.one_of(st.builds(_post_record, strings), hostile.json_values(strings))
    words = typed.Vocabulary(strings, records, target.live_values)
    verb = hostile.mostly(st.just(endpoint.verb), st.sampled_from(hostile.VERBS))
    auth_values = hostile.authorization(
        lambda: target.live_auth() + target.endpoint_auth(endpoint.name)
    )
    auth = hostile.mostly(auth_values.map(_auth_header), st.just({}))
    encoding = (endpoint.input_encoding or "application/json").split(",")[0].strip()
    query = typed.query_params(target.params.get(endpoint.name, endpoint.params), words)
    headers = hostile.headers(auth, encoding.replace("*", "x"))
    body: st.SearchStrategy[bytes | None] = st.none()
    if endpoint.websocket:
        body = target.messages.get(endpoint.name, body)
    elif endpoint.input_encoding:
        body = typed.bodies(endpoint.input, words)
    parts = st.tuples(verb, _paths(endpoint, strings), query, headers, body)
    generic = parts.map(lambda p: hostile.Request(*p))
    special = target.special.get(endpoint.name)
    if special is None:
        return generic
    chosen = st.tuples(special, query, headers)
    return st.one_of(
        generic,
        chosen.map(lambda p: hostile.Request(endpoint.verb, p[0][0], p[1], p[2], p[0][1])),
    )


def _auth_header(value: bytes) -> dict[str, bytes]:
    return {"authorization": value}


def _post_record(text: str) -> dict[str, Any]:
    return {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2024-01-01T00:00:00.000Z"}


def _paths(endpoint: Endpoint, strings: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    if endpoint.nsids:
        nsid = hostile.mostly(st.sampled_from(endpoint.nsids), strings)
        return nsid.map(lambda n: "/xrpc/" + _quote(n))
    names = re.findall(r"{(\w+)(?::\w+)?}", endpoint.path)
    if not names:
        return st.just(endpoint.path)
    return st.lists(strings, min_size=len(names), max_size=len(names)).map(
        lambda values: _fill(endpoint.path, values)
    )


def _fill(path: str, values: list[str]) -> str:
    for value in values:
        path = re.sub(
            r"{\w+(?::\w+)?}", (_quote(value) or "x").replace("\\", "\\\\"), path, count=1
        )
    return path


def _quote(text: str) -> str:
    return quote(text, safe="", errors="surrogatepass")


def query_string(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in pairs)


async def send(target: Target, request: hostile.Request) -> Outcome:
    """Send one request through the app and collect the answer and any error log lines."""
    with _captured_errors() as lines:
        url = request.path + (f"?{query_string(request.query)}" if request.query else "")
        headers = [(k.encode(), v) for k, v in request.headers.items()]
        response = await target.client.request(
            request.verb, url, headers=headers, content=request.body
        )
        body = response.content
    if 200 <= response.status_code < 300 and request.verb == "POST" and target.after_change:
        await target.after_change()
    return Outcome(response.status_code, body, lines)


async def open_websocket(target: Target, request: hostile.Request) -> Outcome:
    """Open a subscription with the request's query and headers, send the request's body (if
    any) as the client's message, take what the server sends first, then leave. A server
    failure shows as close code 1011 (Outcome status 500); a refusal before the upgrade as its
    HTTP status and body; an accepted socket as 101."""
    query = query_string(request.query).encode()
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(k.encode(), v) for k, v in request.headers.items()],
        "server": ("fuzz.test", 80),
        "client": ("127.0.0.1", 40000),
        "subprotocols": [
            p.strip()
            for p in request.headers.get("sec-websocket-protocol", b"").decode("latin-1").split(",")
            if p.strip()
        ],
        "extensions": {"websocket.http.response": {}},  # uvicorn and hypercorn offer it
    }
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})
    sent: list[dict[str, Any]] = []
    said = [] if request.body is None else [_client_message(request.body)]

    async def receive() -> dict[str, Any]:
        if not any(m["type"] == "websocket.accept" for m in sent):
            return await inbox.get()
        if said:
            return said.pop()
        try:  # accepted: give the server a moment to send something, then go
            return await asyncio.wait_for(inbox.get(), 0.05)
        except TimeoutError:
            return {"type": "websocket.disconnect", "code": 1000}

    async def send_message(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] in ("websocket.send", "websocket.close"):
            inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    with _captured_errors() as lines:
        await target.app(scope, receive, send_message)
    status, body = 101, b""
    for message in sent:
        if message["type"] == "websocket.close" and message.get("code") == 1011:
            status = 500
        if message["type"] == "websocket.http.response.start":
            status = message["status"]
        if message["type"] == "websocket.http.response.body":
            body += message.get("body", b"")
    return Outcome(status, body, lines)


def _client_message(data: bytes) -> dict[str, Any]:
    """A websocket message from the client: text when `data` is UTF-8, else binary."""
    try:
        return {"type": "websocket.receive", "text": data.decode()}
    except UnicodeDecodeError:
        return {"type": "websocket.receive", "bytes": data}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}"[:500])


@contextmanager
def _captured_errors() -> Iterator[list[str]]:
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)


def judge(target: Target, endpoint: Endpoint, request: hostile.Request, outcome: Outcome) -> None:
    """No 5xx, no error logged, and a 4xx body in the service's error shape."""
    where = f"{endpoint.name}: {request!r}"
    if endpoint.not_implemented and outcome.status == 501:
        if request.verb != "HEAD":
            assert json.loads(outcome.body)["error"] == "MethodNotImplemented", where
        return
    if target.upstream_failures and outcome.status == 502:
        if request.verb != "HEAD":
            assert json.loads(outcome.body)["error"] == "UpstreamFailure", where
        # Logged, as every 5xx is, in one line (atcore.xrpc.failures): nothing else may be.
        upstream = [line for line in outcome.log_lines if "UpstreamFailure" in line]
        assert upstream == outcome.log_lines and len(upstream) <= 1, where
        return
    assert not outcome.log_lines, f"error logged {outcome.log_lines} for {where}"
    assert outcome.status < 500, f"{outcome.status} {outcome.body[:300]!r} for {where}"
    if not 400 <= outcome.status < 500 or request.verb == "HEAD":
        return
    if target.errors == "any" or not _speaks_xrpc(target, request.path):
        return
    try:
        body = json.loads(outcome.body)
    except ValueError:
        raise AssertionError(
            f"{outcome.status} not JSON {outcome.body[:300]!r} for {where}"
        ) from None
    assert isinstance(body, dict), f"error body {body!r} for {where}"
    assert isinstance(body.get("message"), str), f"error body {body!r} for {where}"
    if target.errors == "xrpc":
        assert isinstance(body.get("error"), str), f"error body {body!r} for {where}"


def _speaks_xrpc(target: Target, path: str) -> bool:
    """Whether errors at `path` are JSON: everything on the PLC, the target's error paths
    (XRPC and admin) elsewhere."""
    return target.errors == "plc" or path.startswith(target.error_paths)


def fuzz(target: Target, endpoint: Endpoint, examples: int = EXAMPLES) -> str | None:
    """Run `examples` hostile requests at `endpoint`; the first failure (shrunk), or None."""
    opener = open_websocket if endpoint.websocket else send

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(requests(endpoint, target))
    def check(request: hostile.Request) -> None:
        judge(target, endpoint, request, target.run(opener(target, request)))

    try:
        with warnings.catch_warnings():
            # The strategy's own description is long (it is built of many others): not a fault.
            warnings.filterwarnings("ignore", "Generating overly large repr", HypothesisWarning)
            check()
    except AssertionError as exc:
        return str(exc).splitlines()[0][:2000]
    except Exception as exc:  # the app raised through the middleware, or hung
        return f"{endpoint.name}: {type(exc).__name__}: {exc!s:.1000}"
    return None
