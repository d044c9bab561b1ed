"""Paths for the appview's image service (`/img/{preset}/plain/{did}/{cid}@{format}`): mostly
real presets, formats, the indexed account's DID and a well-formed CID, each part now and then
hostile."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import strategies as st

from tests.fuzz.hostile import mostly

IMAGES = "GET /img/{preset}/plain/{did}/{cid}"
PRESETS = ["avatar", "banner", "feed_thumbnail", "feed_fullsize"]
FORMATS = ["jpeg", "png", "webp"]
CIDS = [
    "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy",
    "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
]


def image_paths(
    strings: st.SearchStrategy[str], did: str
) -> st.SearchStrategy[tuple[str, bytes | None]]:
    """(path, no body) pairs for tests.fuzz.harness's `special` requests."""

    def part(usual: list[str]) -> st.SearchStrategy[str]:
        return mostly(st.sampled_from(usual), strings).map(
            lambda text: quote(text, safe="", errors="surrogatepass") or "x"
        )

    return st.builds(
        lambda preset, who, cid, fmt: (f"/img/{preset}/plain/{who}/{cid}@{fmt}", None),
        part(PRESETS),
        part([did, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:web:localhost%3A1"]),
        part(CIDS),
        part(FORMATS),
    )
