"""A logged-in XRPC session on one PDS that survives what a long migration meets
(spec-xrpc.md, "Authentication"; spec-account.md, "PDS Account Migration").

Transport failures, rate limits (429) and a server's passing 5xx are retried with exponential
back-off, waiting at least as long as a Retry-After header asks (up to MAX_DELAY); an expired
access token is replaced by a fresh login with the stored password, so a migration that takes
longer than a token lives simply carries on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from atcore.xrpc.client import HttpClient, Params, XrpcClient, XrpcClientError

T = TypeVar("T")

RETRIED_STATUS: Final = frozenset({0, 408, 429, 500, 502, 503, 504})
ATTEMPTS: Final = 6
FIRST_DELAY: Final = 0.5
MAX_DELAY: Final = 30.0
# What one response may hold: a whole repository CAR or one blob.
MAX_RESPONSE: Final = 512 * 1024 * 1024
# How long one call may take: a whole repository of that size on a slow link.
TIMEOUT: Final = 600.0


class Session:
    """Calls to `base_url`, logged in as `identifier` once `login()` succeeded."""

    def __init__(
        self,
        base_url: str,
        http: HttpClient,
        *,
        attempts: int = ATTEMPTS,
        first_delay: float = FIRST_DELAY,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.client = XrpcClient(base_url, http, max_response=MAX_RESPONSE, timeout=TIMEOUT)
        self.url = self.client.base_url
        self._attempts = attempts
        self._first_delay = first_delay
        self._notice = notice
        self._login: tuple[str, str] | None = None
        self.info: dict[str, Any] = {}

    async def login(self, identifier: str, password: str) -> dict[str, Any]:
        """createSession; the session view (did, handle, email, active, ...)."""
        body = {"identifier": identifier, "password": password}
        self.client.auth_header = None
        info = await self._retry(
            lambda: self.client.procedure("com.atproto.server.createSession", body)
        )
        self.adopt(info)
        self._login = (identifier, password)
        return self.info

    def adopt(self, info: dict[str, Any]) -> None:
        """Use the tokens of a session the server just handed out (createSession/Account)."""
        self.info = info
        self.client.auth_header = f"Bearer {info['accessJwt']}"

    def remember(self, identifier: str, password: str) -> None:
        self._login = (identifier, password)

    async def query(self, nsid: str, params: Params | None = None) -> Any:
        return await self.call(lambda: self.client.query(nsid, params))

    async def query_bytes(self, nsid: str, params: Params | None = None) -> tuple[bytes, str]:
        return await self.call(lambda: self.client.query_bytes(nsid, params))

    async def procedure(
        self, nsid: str, data: dict[str, Any] | bytes | None = None, *, encoding: str | None = None
    ) -> Any:
        return await self.call(lambda: self.client.procedure(nsid, data, encoding=encoding))

    async def call(self, request: Callable[[], Awaitable[T]]) -> T:
        """`request()` with retries, logging in again once when the access token expired."""
        try:
            return await self._retry(request)
        except XrpcClientError as exc:
            if exc.error != "ExpiredToken" or self._login is None:
                raise
        await self.login(*self._login)
        return await self._retry(request)

    async def _retry(self, request: Callable[[], Awaitable[T]]) -> T:
        delay, attempt = self._first_delay, 1
        while True:
            try:
                return await request()
            except XrpcClientError as exc:
                if exc.status not in RETRIED_STATUS or attempt >= self._attempts:
                    raise
                if exc.retry_after is not None and exc.retry_after.isdigit():
                    delay = min(max(delay, int(exc.retry_after)), MAX_DELAY)
                if self._notice is not None:
                    self._notice(f"{self.url}: {exc}; retrying in {delay:g} s")
            await asyncio.sleep(delay)
            delay, attempt = min(delay * 2, MAX_DELAY), attempt + 1
