"""Image presets and URLs of the shape the reference appview serves under `/img/`.

`{base}/{preset}/plain/{did}/{cid}@{format}`: the preset fixes the size and fit, the format
the encoding. Sizes and fits are the official appview's (`@atproto/bsky` image/uri.ts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

from atcore.cid import CID, parse_cid
from atcore.errors import InvalidCid
from atcore.syntax.did import Did, parse_did
from atcore.xrpc.errors import InvalidRequest

Fit = Literal["cover", "inside"]


@dataclass(frozen=True)
class Preset:
    """Scale (up or down) to `width` x `height`: `cover` fills it and crops the overflow
    around the centre, `inside` keeps the whole image within it."""

    width: int
    height: int
    fit: Fit


PRESETS: Final[dict[str, Preset]] = {
    "avatar": Preset(1000, 1000, "cover"),
    "banner": Preset(3000, 1000, "cover"),
    "feed_thumbnail": Preset(2000, 2000, "inside"),
    "feed_fullsize": Preset(1000, 1000, "inside"),
}

# Output format name in the URL -> (Pillow format, content type).
FORMATS: Final[dict[str, tuple[str, str]]] = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
}
DEFAULT_FORMAT: Final = "jpeg"


@dataclass(frozen=True)
class ImageRequest:
    preset_name: str
    did: Did
    cid: CID
    format: str

    @property
    def preset(self) -> Preset:
        return PRESETS[self.preset_name]

    @property
    def cache_key(self) -> str:
        return f"{self.did}::{self.cid.encode()}::{self.preset_name}::{self.format}"


def image_url(base: str, preset: str, did: str, cid: str, fmt: str = DEFAULT_FORMAT) -> str:
    """The URL of a blob's rendition; `base` is the appview's `{public URL}/img` or the CDN's
    (BSKY_CDN_URL). Raises ValueError for a preset or format the service does not serve.

    The DID is percent-encoded (a no-op but for did:web's `%3A` port separator), since servers
    decode the path before routing it.
    """
    if preset not in PRESETS or fmt not in FORMATS:
        raise ValueError(f"no image preset {preset!r} in format {fmt!r}")
    return f"{base.rstrip('/')}/{preset}/plain/{quote(did, safe=':')}/{cid}@{fmt}"


def parse_request(preset: str, did: str, cid_and_format: str) -> ImageRequest:
    """The path parameters of an image URL, checked; InvalidRequest (400) names the bad part.

    The format suffix may be left out, as the reference allows, for the default one.
    """
    if preset not in PRESETS:
        raise InvalidRequest(f"unknown image preset {preset!r}")
    cid_text, _, fmt = cid_and_format.partition("@")
    fmt = fmt or DEFAULT_FORMAT
    if fmt not in FORMATS:
        raise InvalidRequest(f"unsupported image format {fmt!r}: one of {', '.join(FORMATS)}")
    cid = parse_cid(cid_text)
    # Blobs are raw-codec CIDs (spec-blob.md); a dag-cbor CID names a record block, no image.
    if not cid.is_cidv1_raw_sha256_32():
        raise InvalidCid(f"{cid_text} is not a blob CID (raw codec)")
    return ImageRequest(preset, parse_did(did), cid, fmt)
