"""Rate limits: a limit fires with the RateLimit-* headers and resets when its window ends
(the clock is injected), write points per account, bypass, and off by default in dev mode."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from pds.config import PdsConfig
from pds.ratelimit import GLOBAL, METHOD_LIMITS, WRITE_POINTS, Limit, RateLimiter
from tests.pds.appview_standin import appview_standin
from tests.pds.conftest import PASSWORD, Pds, serve_in_process
from tests.pds.test_server_accounts import error_of

LOGIN = "com.atproto.server.createSession"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def limited(pds_config: PdsConfig) -> AsyncIterator[tuple[Pds, Clock]]:
    config = dataclasses.replace(pds_config, rate_limits_enabled=True, rate_limit_bypass_key="k")
    clock = Clock()
    async for pds in serve_in_process(config):
        pds.ctx.rate_limits.limiter.clock = clock
        yield pds, clock


# The reference's published defaults (bskydocs-rate-limits.md): method -> (points, seconds).
DOCUMENTED = {
    "com.atproto.server.createAccount": {(100, 300)},
    "com.atproto.server.createSession": {(30, 300), (300, 86400)},
    "com.atproto.server.deleteAccount": {(50, 300)},
    "com.atproto.server.resetPassword": {(50, 300)},
    "com.atproto.identity.updateHandle": {(10, 300), (50, 86400)},
    "com.atproto.repo.applyWrites": {(5000, 3600), (35000, 86400)},
}


def test_defaults_are_the_documented_ones() -> None:
    assert (GLOBAL.points, GLOBAL.seconds) == (3000, 300)
    for method, limits in DOCUMENTED.items():
        assert {(limit.points, limit.seconds) for limit in METHOD_LIMITS[method]} == limits
    assert WRITE_POINTS == {"create": 3, "update": 2, "delete": 1}
    for write in ("createRecord", "putRecord", "deleteRecord"):
        assert (
            METHOD_LIMITS[f"com.atproto.repo.{write}"]
            == METHOD_LIMITS["com.atproto.repo.applyWrites"]
        )


def test_windows_are_fixed_and_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, max_keys=3)
    limit = Limit("t", 2, 60, lambda req: "k")
    outcomes = [limiter.consume(limit, "a", 1) for _ in range(3)]
    assert [o.allowed for o in outcomes] == [True, True, False]
    assert [o.remaining for o in outcomes] == [1, 0, 0]
    assert outcomes[0].reset_at == clock.now + 60
    clock.now += 60
    assert limiter.consume(limit, "a", 1).allowed
    for key in "bcde":
        limiter.consume(limit, key, 1)
    assert len(limiter._windows) <= 3


async def test_login_limit_fires_and_resets(limited: tuple[Pds, Clock]) -> None:
    pds, clock = limited
    body = {"identifier": "nobody.test", "password": "wrong"}
    first = await pds.call(LOGIN, body)
    assert error_of(first) == (401, "AuthenticationRequired")
    # The handler's own errors carry the tightest limit's headers, as the reference's do.
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("30", "29")
    for _ in range(29):
        assert error_of(await pds.call(LOGIN, body)) == (401, "AuthenticationRequired")
    refused = await pds.call(LOGIN, body)
    assert error_of(refused) == (429, "RateLimitExceeded")
    headers = refused.headers
    assert headers["ratelimit-limit"] == "30"
    assert headers["ratelimit-remaining"] == "0"
    assert headers["ratelimit-policy"] == "30;w=300"
    assert int(headers["ratelimit-reset"]) == int(clock.now) + 300
    # Another identifier has its own budget; the bypass key skips limits.
    other = await pds.call(LOGIN, {"identifier": "else.test", "password": "x"})
    assert other.status_code == 401
    bypass = await pds.client.post(f"/xrpc/{LOGIN}", json=body, headers={"x-ratelimit-bypass": "k"})
    assert bypass.status_code == 401 and "ratelimit-limit" not in bypass.headers
    clock.now += 299
    assert (await pds.call(LOGIN, body)).status_code == 429
    clock.now += 1
    assert (await pds.call(LOGIN, body)).status_code == 401


async def test_answers_within_limits_carry_headers(limited: tuple[Pds, Clock]) -> None:
    pds, clock = limited
    await pds.create_account("sue.test")
    login = await pds.call(LOGIN, {"identifier": "sue.test", "password": PASSWORD})
    assert login.status_code == 200
    assert {k: v for k, v in login.headers.items() if k.startswith("ratelimit-")} == {
        "ratelimit-limit": "30",
        "ratelimit-remaining": "29",
        "ratelimit-reset": str(int(clock.now) + 300),
        "ratelimit-policy": "30;w=300",
    }
    # A method with only the global per-IP limit: the third request from this address.
    session = await pds.call("com.atproto.server.getSession", token=login.json()["accessJwt"])
    assert session.status_code == 200
    assert session.headers["ratelimit-policy"] == "3000;w=300"
    assert session.headers["ratelimit-remaining"] == "2997"


@pytest.fixture
async def limited_proxy(pds_config: PdsConfig, plc_url: str) -> AsyncIterator[Pds]:
    with appview_standin(plc_url) as standin:
        config = dataclasses.replace(
            pds_config, rate_limits_enabled=True, appview_url=standin.url, appview_did=standin.did
        )
        async for pds in serve_in_process(config):
            yield pds


async def test_proxied_answers_carry_headers(limited_proxy: Pds) -> None:
    pds = limited_proxy
    account = await pds.create_account("pia.test")
    params = {"actor": "pia.test"}
    profile = await pds.call("app.bsky.actor.getProfile", params=params, token=account["accessJwt"])
    assert profile.status_code == 200, profile.text
    assert profile.headers["ratelimit-policy"] == "3000;w=300"
    assert profile.headers["ratelimit-remaining"] == "2998"


async def test_write_points_per_account(limited: tuple[Pds, Clock]) -> None:
    pds, clock = limited
    account = await pds.create_account("wendy.test")
    did, token = account["did"], account["accessJwt"]
    # Nearly spend the hour's 5000 points, then a batch of two creates (6 points) crosses it.
    pds.ctx.rate_limits.limiter._windows[("repo-write-hour", did)] = [clock.now, 4995.0]
    record = {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2024-01-01T00:00:00Z"}
    create = {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post"}
    writes = {"repo": did, "writes": [{**create, "value": record}, {**create, "value": record}]}
    refused = await pds.call("com.atproto.repo.applyWrites", writes, token=token)
    assert error_of(refused) == (429, "RateLimitExceeded")
    assert refused.headers["ratelimit-policy"] == "5000;w=3600"
    clock.now += 3600
    done = await pds.call("com.atproto.repo.applyWrites", writes, token=token)
    assert done.status_code == 200, done.text


async def test_dev_mode_has_no_limits(pds: Pds) -> None:
    assert pds.ctx.config.rate_limits_enabled is False
    body = {"identifier": "nobody.test", "password": "wrong"}
    for _ in range(31):
        refused = await pds.call(LOGIN, body)
        assert refused.status_code == 401 and "ratelimit-limit" not in refused.headers
