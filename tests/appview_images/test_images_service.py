"""The image routes against a real PLC and a real dev-mode PDS holding uploaded image blobs."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from appview.images.presets import image_url
from appview.images.routes import image_routes
from atcore.cid import cid_for_raw
from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.identity.resolver import IdentityResolver
from tests.appview_images.pictures import CAMERA, jpeg_with_exif, opened
from tests.servers import running_service

pytestmark = pytest.mark.integration

APPVIEW = "http://appview.test"


@dataclass(frozen=True)
class Network:
    plc: str
    pds: str
    pds_data: Path


@dataclass(frozen=True)
class Blob:
    did: str
    cid: str

    def url(self, preset: str, fmt: str = "jpeg") -> str:
        return image_url(f"{APPVIEW}/img", preset, self.did, self.cid, fmt)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("images")
    with running_service("plc", root / "plc") as plc:
        env = {"PDS_DEV_MODE": "true", "PDS_HOSTNAME": "localhost", "PDS_DID_PLC_URL": plc}
        with running_service("pds", root / "pds", env=env) as pds:
            yield Network(plc, pds, root / "pds")


async def posted_blob(network: Network, data: bytes, mime: str = "image/jpeg") -> Blob:
    """A new account's post embedding `data` as an image: the blob a feed view would show."""
    async with httpx.AsyncClient(base_url=network.pds) as pds:
        handle = f"u{secrets.token_hex(4)}.test"
        account = await pds.post(
            "/xrpc/com.atproto.server.createAccount",
            json={"handle": handle, "email": f"{handle}@example.com", "password": "pw pw pw pw"},
        )
        assert account.status_code == 200, account.text
        did, auth = (
            account.json()["did"],
            {"authorization": f"Bearer {account.json()['accessJwt']}"},
        )
        uploaded = await pds.post(
            "/xrpc/com.atproto.repo.uploadBlob",
            content=data,
            headers={**auth, "content-type": mime},
        )
        assert uploaded.status_code == 200, uploaded.text
        blob = uploaded.json()["blob"]
        record = {
            "$type": "app.bsky.feed.post",
            "text": "a picture",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "embed": {"$type": "app.bsky.embed.images", "images": [{"image": blob, "alt": ""}]},
        }
        body = {"repo": did, "collection": "app.bsky.feed.post", "record": record}
        created = await pds.post("/xrpc/com.atproto.repo.createRecord", json=body, headers=auth)
        assert created.status_code == 200, created.text
    return Blob(did, blob["ref"]["$link"])


@asynccontextmanager
async def image_service(
    network: Network,
    cache_dir: Path,
    *,
    dev_mode: bool = True,
    private_ok: bool | None = None,
    outbound: list[str] | None = None,
    **options: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """An app mounting only the image routes, driven over ASGI, fetching through the SSRF
    guard as an appview does (private addresses allowed as `private_ok`, by default as in
    dev mode); `outbound` collects the URL paths it requests from PDSes."""
    options.setdefault("cache_max_bytes", 50_000_000)

    async def record(request: httpx.Request) -> None:
        if outbound is not None:
            outbound.append(request.url.path)

    async with (
        httpx.AsyncClient() as plc_http,
        guarded_client(
            AddressGuard(allow_private=dev_mode if private_ok is None else private_ok)
        ) as http,
        IdentityResolver(network.plc, plc_http, allow_private=True) as resolver,
    ):
        http.event_hooks = {"request": [record]}
        routes = image_routes(
            cache_dir=cache_dir, resolver=resolver, http=http, dev_mode=dev_mode, **options
        )
        transport = httpx.ASGITransport(app=Starlette(routes=routes))
        async with httpx.AsyncClient(transport=transport, base_url=APPVIEW) as client:
            yield client


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["message"], body
    return response.status_code, body["error"]


async def test_renders_resized_jpeg_without_metadata_and_caches_it(
    network: Network, tmp_path: Path
) -> None:
    blob = await posted_blob(network, jpeg_with_exif(1600, 900, orientation=6))
    async with image_service(network, tmp_path / "cache") as client:
        first = await client.get(blob.url("feed_fullsize"))
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "image/jpeg"
        assert first.headers["cache-control"] == "public, max-age=31536000"
        assert first.headers["x-cache"] == "miss"
        image = opened(first.content)
        assert (image.format, image.size) == ("JPEG", (563, 1000))  # turned upright, then fit
        assert len(image.getexif()) == 0 and CAMERA.encode() not in first.content

        again = await client.get(blob.url("feed_fullsize"))
        assert again.headers["x-cache"] == "hit" and again.content == first.content
        assert len(list((tmp_path / "cache").iterdir())) == 1

        avatar = await client.get(blob.url("avatar"))
        assert avatar.headers["x-cache"] == "miss" and opened(avatar.content).size == (1000, 1000)
        webp = await client.get(blob.url("feed_thumbnail", "webp"))
        assert webp.headers["content-type"] == "image/webp"
        assert (opened(webp.content).format, opened(webp.content).size) == ("WEBP", (1125, 2000))


async def test_bad_requests_get_clear_errors(network: Network, tmp_path: Path) -> None:
    blob = await posted_blob(network, jpeg_with_exif(64, 64))
    # A PNG signature and then no image: the PDS takes it for a PNG, Pillow cannot decode it.
    text = await posted_blob(network, b"\x89PNG\r\n\x1a\n and then words", "image/png")
    missing = cid_for_raw(b"never uploaded").encode()
    unknown_did = "did:plc:" + "a" * 24
    async with image_service(network, tmp_path / "cache") as client:
        cases = [
            (f"/img/poster/plain/{blob.did}/{blob.cid}@jpeg", (400, "InvalidRequest")),
            (f"/img/avatar/plain/{blob.did}/{blob.cid}@tiff", (400, "InvalidRequest")),
            (f"/img/avatar/plain/{blob.did}/bafkreinotacid@jpeg", (400, "InvalidRequest")),
            (f"/img/avatar/plain/did:nope/{blob.cid}@jpeg", (400, "InvalidRequest")),
            (f"/img/avatar/plain/did:key:zQ3sh/{blob.cid}@jpeg", (400, "InvalidDid")),
            (f"/img/avatar/plain/{unknown_did}/{blob.cid}@jpeg", (404, "OriginNotFound")),
            (f"/img/avatar/plain/{blob.did}/{missing}@jpeg", (404, "BlobNotFound")),
            (f"/img/avatar/plain/{text.did}/{text.cid}@jpeg", (400, "NotAnImage")),
        ]
        for path, expected in cases:
            assert error_of(await client.get(path)) == expected, path
        assert list((tmp_path / "cache").iterdir()) == []


async def test_an_unreachable_origin_is_a_502_logged_with_the_request(
    network: Network, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cid = cid_for_raw(b"anything").encode()
    # The DID's own %3A, escaped in turn in the path: nothing listens on localhost:1.
    path = f"/img/avatar/plain/did:web:localhost%253A1/{cid}@jpeg"
    async with image_service(network, tmp_path / "cache") as client:
        with caplog.at_level(logging.ERROR, "atcore.xrpc"):
            response = await client.get(path)
    assert error_of(response) == (502, "UpstreamFailure")
    (line,) = caplog.messages
    # One line naming the request it failed (verb and path), as every 5xx's line does.
    assert " GET /img/avatar/plain/did:web:localhost%3A1/" in line, line


async def test_bytes_that_do_not_match_the_cid_are_refused(
    network: Network, tmp_path: Path
) -> None:
    blob = await posted_blob(network, jpeg_with_exif(300, 200))
    # The PDS's blob store now holds other (valid image) bytes under the blob's CID.
    stored = network.pds_data / "blocks" / blob.did / blob.cid
    assert stored.is_file()
    stored.write_bytes(jpeg_with_exif(300, 201))
    async with image_service(network, tmp_path / "cache") as client:
        refused = await client.get(blob.url("feed_fullsize"))
        assert error_of(refused) == (404, "BlobNotFound")
        assert "do not match" in refused.json()["message"]
    assert list((tmp_path / "cache").iterdir()) == []


async def test_the_cache_stays_within_its_byte_bound(network: Network, tmp_path: Path) -> None:
    blob = await posted_blob(network, jpeg_with_exif(400, 300))
    cache = tmp_path / "cache"
    async with image_service(network, cache) as client:
        sizes = {p: len((await client.get(blob.url(p))).content) for p in ("avatar", "banner")}
    bound = max(sizes.values()) + min(sizes.values()) // 2  # room for one rendition, not two
    async with image_service(network, tmp_path / "bounded", cache_max_bytes=bound) as client:
        assert (await client.get(blob.url("avatar"))).headers["x-cache"] == "miss"
        assert (await client.get(blob.url("avatar"))).headers["x-cache"] == "hit"
        assert (await client.get(blob.url("banner"))).headers["x-cache"] == "miss"
        assert (await client.get(blob.url("avatar"))).headers["x-cache"] == "miss"  # evicted
        on_disk = [p.stat().st_size for p in (tmp_path / "bounded").iterdir()]
        assert on_disk == [sizes["avatar"]] and sum(on_disk) <= bound


async def test_blob_size_bound_and_production_origins(network: Network, tmp_path: Path) -> None:
    blob = await posted_blob(network, jpeg_with_exif(800, 600))
    async with image_service(network, tmp_path / "a", max_blob_bytes=1024) as client:
        assert error_of(await client.get(blob.url("avatar"))) == (400, "BlobTooLarge")
    # Outside dev mode a PDS on plain http (here also on loopback) serves no blobs.
    async with image_service(network, tmp_path / "b", dev_mode=False) as client:
        assert error_of(await client.get(blob.url("avatar"))) == (404, "OriginNotFound")
    # And the guard under the client refuses the loopback address it would connect to.
    outbound: list[str] = []
    async with image_service(
        network, tmp_path / "c", private_ok=False, outbound=outbound
    ) as client:
        refused = await client.get(blob.url("avatar"))
        assert error_of(refused) == (404, "OriginNotFound") and "non-public" in refused.text
    assert outbound == ["/xrpc/com.atproto.sync.getBlob"]  # asked for, never connected


async def test_concurrent_requests_share_one_fetch_and_render(
    network: Network, tmp_path: Path
) -> None:
    blob = await posted_blob(network, jpeg_with_exif(1200, 800))
    outbound: list[str] = []
    async with image_service(network, tmp_path / "cache", outbound=outbound) as client:
        responses = await asyncio.gather(*(client.get(blob.url("banner")) for _ in range(6)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert outbound.count("/xrpc/com.atproto.sync.getBlob") == 1
