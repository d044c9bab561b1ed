"""Rate limits per IP and per account, with the reference PDS's defaults (bskydocs-rate-limits.md).

Each limit is a fixed window that opens at a key's first request: `points` per `seconds`.
Exceeding one answers 429 RateLimitExceeded with the draft-polli `RateLimit-Limit`,
`-Remaining`, `-Reset` (epoch seconds) and `-Policy` (`points;w=seconds`) headers; other
answers carry the same headers for the limit closest to running out. Counters
live in memory, as the reference's single-process default does, bounded in number. Limits are
on unless PDS_RATE_LIMITS_ENABLED=false (off in dev mode); PDS_RATE_LIMIT_BYPASS_KEY (sent as
`x-ratelimit-bypass`) and PDS_RATE_LIMIT_BYPASS_IPS let trusted callers through.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from atcore.xrpc.errors import RateLimitExceeded
from atcore.xrpc.router import RateLimit, XrpcRequest, XrpcRouter
from pds.config import PdsConfig

Clock = Callable[[], float]
MINUTE: Final = 60
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
# Counters kept at most; past this, expired windows go first, then the oldest.
MAX_KEYS: Final = 200_000
# Points a record write costs in the per-account write budget.
WRITE_POINTS: Final = {"create": 3, "update": 2, "delete": 1}


def client_ip(req: XrpcRequest) -> str:
    """The caller's address; behind a reverse proxy on a private address (Caddy, nginx) the
    nearest public address in X-Forwarded-For, as the reference trusts local proxies."""
    peer = req.request.client.host if req.request.client else "unknown"
    if _is_public(peer):
        return peer
    forwarded = [a.strip() for a in req.request.headers.get("x-forwarded-for", "").split(",")]
    for address in reversed([a for a in forwarded if a]):
        if _is_public(address):
            return address
    return peer


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (ip.is_private or ip.is_loopback or ip.is_link_local)


def _did(req: XrpcRequest) -> str | None:
    return getattr(req.auth, "did", None) or None


@dataclass(frozen=True)
class Limit:
    """`points` per `seconds` for each key; `key` None leaves the request out of this limit."""

    name: str
    points: int
    seconds: int
    key: Callable[[XrpcRequest], str | None]
    cost: Callable[[XrpcRequest], int] = lambda req: 1


@dataclass(frozen=True)
class Outcome:
    allowed: bool
    remaining: int
    reset_at: float


class RateLimiter:
    """Fixed-window counters by (limit, key); `clock` is injectable (seconds since the epoch)."""

    def __init__(self, clock: Clock = time.time, max_keys: int = MAX_KEYS) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[tuple[str, str], list[float]] = {}

    def consume(self, limit: Limit, key: str, cost: int) -> Outcome:
        now = self.clock()
        slot = (limit.name, key)
        window = self._windows.get(slot)
        if window is None or window[0] + limit.seconds <= now:
            self._make_room(now)
            window = self._windows[slot] = [now, 0.0]
        window[1] += cost
        used = int(window[1])
        return Outcome(used <= limit.points, max(0, limit.points - used), window[0] + limit.seconds)

    def _make_room(self, now: float) -> None:
        if len(self._windows) < self.max_keys:
            return
        # Windows last at most a day: anything older is over whatever its limit was.
        for slot in [s for s, (start, _) in self._windows.items() if start + DAY <= now]:
            del self._windows[slot]
        while len(self._windows) >= self.max_keys:
            del self._windows[next(iter(self._windows))]


def _headers(limit: Limit, outcome: Outcome) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(limit.points),
        "RateLimit-Remaining": str(outcome.remaining),
        "RateLimit-Reset": str(int(outcome.reset_at)),
        "RateLimit-Policy": f"{limit.points};w={limit.seconds}",
    }


@dataclass(frozen=True)
class RateLimits:
    """The limits in force: the counters, whether limits are on, and who bypasses them."""

    limiter: RateLimiter
    enabled: bool
    bypass_key: str | None = None
    bypass_ips: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: PdsConfig) -> RateLimits:
        return cls(
            RateLimiter(),
            config.rate_limits_enabled,
            config.rate_limit_bypass_key,
            config.rate_limit_bypass_ips,
        )

    async def check(self, req: XrpcRequest, limits: Sequence[Limit]) -> dict[str, str]:
        """Count the request against each limit; RateLimitExceeded if one is exhausted.
        Otherwise the RateLimit-* headers of the tightest limit (fewest points left) for the
        response, as the reference sends them on every limited call; none when limits are off
        or bypassed."""
        if not self.enabled or self._bypassed(req):
            return {}
        tightest: tuple[Limit, Outcome] | None = None
        for limit in limits:
            key = limit.key(req)
            if key is None:
                continue
            outcome = self.limiter.consume(limit, key, limit.cost(req))
            if not outcome.allowed:
                raise RateLimitExceeded("Rate Limit Exceeded", headers=_headers(limit, outcome))
            if tightest is None or outcome.remaining < tightest[1].remaining:
                tightest = (limit, outcome)
        return {} if tightest is None else _headers(*tightest)

    def _bypassed(self, req: XrpcRequest) -> bool:
        key = req.request.headers.get("x-ratelimit-bypass")
        if self.bypass_key and key is not None:
            if hmac.compare_digest(key.encode(), self.bypass_key.encode()):
                return True
        return client_ip(req) in self.bypass_ips


def _write_cost(req: XrpcRequest) -> int:
    if req.nsid == "com.atproto.repo.applyWrites":
        writes: list[dict[str, Any]] = (req.input or {}).get("writes", [])
        kinds = (str(w.get("$type", "")).rpartition("#")[2] for w in writes)
        return sum(WRITE_POINTS.get(kind, 1) for kind in kinds)
    return {
        "com.atproto.repo.createRecord": WRITE_POINTS["create"],
        "com.atproto.repo.putRecord": WRITE_POINTS["update"],
    }.get(req.nsid, WRITE_POINTS["delete"])


def _login_key(req: XrpcRequest) -> str:
    return f"{str((req.input or {}).get('identifier', '')).lower()}-{client_ip(req)}"


GLOBAL: Final = Limit("global-ip", 3000, 5 * MINUTE, client_ip)
_WRITES: Final = (
    Limit("repo-write-hour", 5000, HOUR, _did, _write_cost),
    Limit("repo-write-day", 35000, DAY, _did, _write_cost),
)


def _email_limits(name: str, key: Callable[[XrpcRequest], str | None]) -> tuple[Limit, ...]:
    return (Limit(f"{name}-hour", 5, HOUR, key), Limit(f"{name}-day", 15, DAY, key))


# Method -> its own limits, on top of GLOBAL. Names are shared where the reference shares them.
METHOD_LIMITS: Final[dict[str, tuple[Limit, ...]]] = {
    "com.atproto.server.createSession": (
        Limit("create-session-5m", 30, 5 * MINUTE, _login_key),
        Limit("create-session-day", 300, DAY, _login_key),
    ),
    "com.atproto.server.createAccount": (Limit("create-account", 100, 5 * MINUTE, client_ip),),
    "com.atproto.server.deleteAccount": (Limit("delete-account", 50, 5 * MINUTE, client_ip),),
    "com.atproto.server.resetPassword": (Limit("reset-password", 50, 5 * MINUTE, client_ip),),
    "com.atproto.identity.updateHandle": (
        Limit("update-handle-5m", 10, 5 * MINUTE, _did),
        Limit("update-handle-day", 50, DAY, _did),
    ),
    "com.atproto.server.requestAccountDelete": _email_limits("request-delete", _did),
    "com.atproto.server.requestEmailConfirmation": _email_limits("request-confirm", _did),
    "com.atproto.server.requestEmailUpdate": _email_limits("request-email-update", _did),
    "com.atproto.server.requestPasswordReset": _email_limits("request-reset", client_ip),
    "com.atproto.identity.requestPlcOperationSignature": _email_limits("request-plc", _did),
    "com.atproto.repo.uploadBlob": (Limit("upload-blob", 1000, DAY, client_ip),),
    "com.atproto.repo.createRecord": _WRITES,
    "com.atproto.repo.putRecord": _WRITES,
    "com.atproto.repo.deleteRecord": _WRITES,
    "com.atproto.repo.applyWrites": _WRITES,
}


def _hook(rate_limits: RateLimits, limits: tuple[Limit, ...], inner: RateLimit | None) -> RateLimit:
    async def rate_limit(req: XrpcRequest) -> Mapping[str, str]:
        headers = await rate_limits.check(req, limits)
        if inner is not None:
            headers.update(await inner(req) or {})
        return headers

    return rate_limit


def apply_rate_limits(router: XrpcRouter, rate_limits: RateLimits) -> None:
    """Give every method of `router` the global limit and its own limits from METHOD_LIMITS
    (kept here in one table, beside any hook a method declared itself); nothing when limits
    are off, so requests then pay nothing for them."""
    if not rate_limits.enabled:
        return
    for nsid, method in router.methods.items():
        limits = (GLOBAL, *METHOD_LIMITS.get(nsid, ()))
        router.methods[nsid] = dataclasses.replace(
            method, rate_limit=_hook(rate_limits, limits, method.rate_limit)
        )
