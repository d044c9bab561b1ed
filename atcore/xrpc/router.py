"""Declarative XRPC method registration (spec-xrpc.md, "Lexicon HTTP Endpoints").

A namespace module declares its methods on a module-level `Methods` and names each handler
after the method:

    xrpc = Methods()

    @xrpc.query("com.atproto.repo.getRecord")
    async def get_record(req: XrpcRequest) -> dict[str, Any]: ...

The app factory binds every namespace's `Methods` to a lexicon catalog with `XrpcRouter`, which
checks each NSID against its lexicon type, and `atcore.xrpc.server.mount` turns that into routes.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from atcore.lexicon import Catalog
from atcore.syntax.nsid import parse_nsid
from atcore.xrpc.body import read_body, stream_body

# An `auth` verifier reads the credentials of a request or websocket handshake and returns an
# opaque value handed to the handler as `req.auth`; it raises XrpcError (e.g. AuthRequired).
AuthVerifier = Callable[[HTTPConnection], Awaitable[Any]]
# The PDS answers methods it does not implement by proxying them: `fallback(request, nsid)`.
Fallback = Callable[[Request, str], Awaitable[Response]]

# 150 KiB of JSON holds any record the lexicons allow; blobs have their own, larger limit.
DEFAULT_JSON_LIMIT = 150 * 1024
DEFAULT_BLOB_LIMIT = 5 * 1024 * 1024


@dataclass(frozen=True)
class XrpcResponse:
    """A handler result with an explicit encoding and headers.

    `body` is a JSON data-model value (CIDs and bytes become `$link`/`$bytes`), raw bytes, an
    async iterable of byte chunks (streamed, e.g. a CAR file), or None for an empty 200.
    """

    body: Any = None
    encoding: str = "application/json"
    headers: Mapping[str, str] | None = None


HandlerResult = Response | XrpcResponse | dict[str, Any] | None


@dataclass(frozen=True)
class XrpcRequest:
    """What a query or procedure handler receives.

    `params` are typed and checked against the lexicon; `input` is the decoded JSON body (as
    data-model values) for `application/json` inputs and None otherwise. Other encodings (CAR,
    blobs) are read by the handler with `read()` or `stream()`, both bounded by `body_limit`.
    """

    request: Request
    nsid: str
    params: dict[str, Any]
    auth: Any = None
    input: Any = None
    encoding: str | None = None
    body_limit: int = DEFAULT_BLOB_LIMIT

    async def read(self) -> bytes:
        """The raw body, at most `body_limit` bytes (PayloadTooLarge beyond)."""
        return await read_body(self.request, self.body_limit)

    def stream(self) -> AsyncIterator[bytes]:
        """The raw body as chunks, cut off with PayloadTooLarge past `body_limit` bytes."""
        return stream_body(self.request, self.body_limit)


# Sends binary frames in order (atcore.xrpc.subscription.frame_sender).
FrameSender = Callable[[Sequence[bytes]], Awaitable[None]]


@dataclass(frozen=True)
class SubscriptionRequest:
    """What a subscription handler receives: the accepted websocket, checked parameters and
    `send_frames`, the cheapest way this server offers to send a run of binary frames."""

    websocket: WebSocket
    nsid: str
    params: dict[str, Any]
    send_frames: FrameSender
    auth: Any = None


def app_state(req: XrpcRequest | SubscriptionRequest | HTTPConnection) -> Any:
    """`app.state` of the app serving `req` (an XRPC request, a subscription or a connection):
    where each service's lifespan puts its context."""
    if isinstance(req, XrpcRequest):
        conn: HTTPConnection = req.request
    elif isinstance(req, SubscriptionRequest):
        conn = req.websocket
    else:
        conn = req
    return conn.app.state


def query_params(params: QueryParams) -> dict[str, list[str]]:
    """URL query parameters with repeats kept, as lexicon arrays need them."""
    grouped: dict[str, list[str]] = {}
    for name, value in params.multi_items():
        grouped.setdefault(name, []).append(value)
    return grouped


Handler = Callable[[XrpcRequest], Awaitable[HandlerResult]]
# A rate limit runs after auth and input decoding (it may count input items) and raises
# RateLimitExceeded; the service supplies the counting. It may return headers (RateLimit-*)
# that the response carries whatever the handler's outcome, as reference servers send them.
RateLimit = Callable[[XrpcRequest], Awaitable[Mapping[str, str] | None]]
SubscriptionHandler = Callable[[SubscriptionRequest], Awaitable[None]]

H = TypeVar("H", bound=Handler)
S = TypeVar("S", bound=SubscriptionHandler)


@dataclass(frozen=True)
class Method:
    nsid: str
    kind: Literal["query", "procedure"]
    handler: Handler
    auth: AuthVerifier | None = None
    rate_limit: RateLimit | None = None
    max_body: int | None = None


@dataclass(frozen=True)
class Subscription:
    nsid: str
    handler: SubscriptionHandler
    auth: AuthVerifier | None = None
    kind: Literal["subscription"] = "subscription"


class Methods:
    """The methods one namespace module declares, by NSID."""

    def __init__(self) -> None:
        self._methods: dict[str, Method | Subscription] = {}

    def query(
        self, nsid: str, *, auth: AuthVerifier | None = None, rate_limit: RateLimit | None = None
    ) -> Callable[[H], H]:
        """Register an `async def handler(req: XrpcRequest)` as the GET method `nsid`."""
        return self._register(nsid, "query", auth, rate_limit, None)

    def procedure(
        self,
        nsid: str,
        *,
        auth: AuthVerifier | None = None,
        rate_limit: RateLimit | None = None,
        max_body: int | None = None,
    ) -> Callable[[H], H]:
        """Register an `async def handler(req: XrpcRequest)` as the POST method `nsid`.

        `max_body` overrides the router's body limit (JSON or blob) for this method.
        """
        return self._register(nsid, "procedure", auth, rate_limit, max_body)

    def subscription(self, nsid: str, *, auth: AuthVerifier | None = None) -> Callable[[S], S]:
        """Register an `async def handler(sub: SubscriptionRequest)` as the websocket `nsid`."""
        parse_nsid(nsid)

        def decorate(handler: S) -> S:
            self._add(Subscription(nsid, handler, auth))
            return handler

        return decorate

    def _register(
        self,
        nsid: str,
        kind: Literal["query", "procedure"],
        auth: AuthVerifier | None,
        rate_limit: RateLimit | None,
        max_body: int | None,
    ) -> Callable[[H], H]:
        parse_nsid(nsid)

        def decorate(handler: H) -> H:
            self._add(Method(nsid, kind, handler, auth, rate_limit, max_body))
            return handler

        return decorate

    def _add(self, method: Method | Subscription) -> None:
        if method.nsid in self._methods:
            raise ValueError(f"XRPC method {method.nsid} is registered twice")
        self._methods[method.nsid] = method

    def __iter__(self) -> Iterator[Method | Subscription]:
        return iter(self._methods.values())


@dataclass
class XrpcRouter:
    """Every method a service serves, bound to the lexicons that type their params and bodies.

    `validate_output` checks JSON responses against the lexicon (tests and debug mode; a
    mismatch is a 500). A `fallback` answers NSIDs no method serves, instead of a 501.
    """

    catalog: Catalog
    groups: Iterable[Methods] = ()
    fallback: Fallback | None = None
    json_limit: int = DEFAULT_JSON_LIMIT
    blob_limit: int = DEFAULT_BLOB_LIMIT
    validate_output: bool = False
    methods: dict[str, Method] = field(init=False, default_factory=dict)
    subscriptions: dict[str, Subscription] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for group in self.groups:
            for method in group:
                declared = self.catalog.get_def(method.nsid)["type"]
                if declared != method.kind:
                    raise ValueError(f"{method.nsid} is a {declared}, not a {method.kind}")
                if method.nsid in self.methods or method.nsid in self.subscriptions:
                    raise ValueError(f"XRPC method {method.nsid} is registered twice")
                if isinstance(method, Subscription):
                    self.subscriptions[method.nsid] = method
                else:
                    self.methods[method.nsid] = method

    def body_limit(self, method: Method, encoding: str) -> int:
        """The byte limit for one request body of `method`."""
        if method.max_body is not None:
            return method.max_body
        return self.json_limit if encoding == "application/json" else self.blob_limit
