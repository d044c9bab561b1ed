"""Shared pieces of the identity tests: sample documents and a real local HTTP server.

`LocalNet` is the test network's /etc/hosts: it sends every request, whatever its host name, to
the local server while keeping the original Host header, so handles like `alice.test` reach it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.syntax.did import Did

PLC_DID = Did("did:plc:ewvi7nxzyoun6zhxrhs64oiz")
OTHER_DID = Did("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
WEB_DID = Did("did:web:alice.test")
# The spec's example of one K-256 key in both encodings (spec-did.md, "Legacy Representation").
LEGACY_K256 = (
    "zQYEBzXeuTM9UR3rfvNag6L3RNAs5pQZyYPsomTsgQhsxLdEgCrPTLgFna8yqCnxPpNT7DBk6Ym3dgPKNu86vt9GR"
)
MULTIKEY_K256 = "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"


def plc_doc(
    did: str = PLC_DID, handle: str = "alice.test", key: str = MULTIKEY_K256
) -> dict[str, Any]:
    """Shaped like plc.directory's answers."""
    return {
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
            "https://w3id.org/security/suites/secp256k1-2019/v1",
        ],
        "id": did,
        "alsoKnownAs": [f"at://{handle}"],
        "verificationMethod": [
            {
                "id": f"{did}#atproto",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": key,
            }
        ],
        "service": [
            {
                "id": "#atproto_pds",
                "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": "https://morel.us-east.host.bsky.network",
            }
        ],
    }


def fixed_lookup(*addresses: str) -> Callable[[str], Awaitable[list[str]]]:
    async def lookup(host: str) -> list[str]:
        return list(addresses)

    return lookup


def txt_records(records: dict[str, list[str]]) -> Callable[[str], Awaitable[list[str]]]:
    async def lookup(name: str) -> list[str]:
        return records.get(name, [])

    return lookup


# --- a real local HTTP server ---

Handler = Callable[[asyncio.StreamWriter], Awaitable[None]]


def reply(
    status: int, body: bytes | str | object, headers: dict[str, str] | None = None
) -> Handler:
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()

    async def send(writer: asyncio.StreamWriter) -> None:
        head = [f"HTTP/1.1 {status} X", f"content-length: {len(data)}", "connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

    return send


class LocalServer:
    """HTTP/1.1 on 127.0.0.1: routes by (Host without port, path); records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[tuple[str, str, str, bytes]] = []  # method, host, path, body
        self.streamed = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: list[httpx.AsyncClient] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.network = LocalNetwork(self.port)

    def guarded(self, guard: AddressGuard) -> httpx.AsyncClient:
        """A guarded_client whose sockets all reach this server (closed by `stop`)."""
        client = guarded_client(guard, network=self.network)
        self._clients.append(client)
        return client

    async def stop(self) -> None:
        assert self._server is not None
        for client in self._clients:
            await client.aclose()
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def route(self, host: str, path: str, handler: Handler) -> None:
        self.routes[(host, path)] = handler

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode().strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            host = headers.get("host", "").split(":")[0]
            self.requests.append((method, host, path, body))
            handler = self.routes.get((host, path)) or self.routes.get(("*", path))
            await (handler or reply(404, {"message": "no route"}))(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    def stream_forever(self, total: int) -> Handler:
        async def send(writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
            chunk = b"{" * 16384
            while self.streamed < total:
                writer.write(chunk)
                self.streamed += len(chunk)
                await writer.drain()

        return send


async def never_answer(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


class LocalNet(httpx.AsyncBaseTransport):
    """Every request goes to the local server over plain http; the Host header is kept."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self._port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class LocalNetwork(httpcore.AsyncNetworkBackend):
    """The socket layer under a guarded client: every connection, whatever address the guard
    chose, goes to the local server, whose plain HTTP stands in for TLS. It records the
    (address, port) asked for and the TLS server name each connection would have used."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []
        self.server_names: list[str | None] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        stream = await self._inner.connect_tcp("127.0.0.1", self._port, timeout)
        return _PlainForTls(stream, self.server_names)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no unix sockets here")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PlainForTls(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream, names: list[str | None]) -> None:
        self._stream = stream
        self._names = names

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self._names.append(server_hostname)
        return self

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class Rebinding:
    """A DNS server under the attacker's control: one answer first, another afterwards."""

    def __init__(self, first: list[str], then: list[str]) -> None:
        self.answers = [first, then]
        self.calls = 0

    async def __call__(self, host: str) -> list[str]:
        self.calls += 1
        return self.answers[min(self.calls, 2) - 1]


class Internet(LocalNetwork):
    """The local server stands in for the addresses in `reachable`; the rest do not answer."""

    def __init__(self, port: int, reachable: set[str]) -> None:
        super().__init__(port)
        self.reachable = reachable

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host not in self.reachable:
            self.connects.append((host, port))
            raise httpcore.ConnectError(f"{host} unreachable")
        return await super().connect_tcp(host, port, timeout, local_address, socket_options)
