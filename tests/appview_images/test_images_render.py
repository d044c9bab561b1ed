"""appview.images presets, URLs and Pillow rendering, on real encoded images."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image, ImageCms

from appview.images.presets import PRESETS, Preset, image_url, parse_request
from appview.images.transform import render, scaled_size
from atcore.cid import cid_for_cbor, cid_for_raw
from atcore.errors import InvalidCid, InvalidSyntax
from atcore.xrpc.errors import InvalidRequest
from tests.appview_images.pictures import CAMERA, jpeg_with_exif, opened, png_with_alpha

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
CID = cid_for_raw(b"a blob").encode()


def test_image_url_has_the_reference_shape() -> None:
    url = image_url("http://localhost:2584/img/", "avatar", DID, CID)
    assert url == f"http://localhost:2584/img/avatar/plain/{DID}/{CID}@jpeg"
    cdn = image_url("https://cdn.example/img", "feed_thumbnail", DID, CID, "webp")
    assert cdn == f"https://cdn.example/img/feed_thumbnail/plain/{DID}/{CID}@webp"
    # did:web's port separator survives the server decoding the path once.
    web = image_url("http://a/img", "banner", "did:web:localhost%3A2584", CID)
    assert "/did:web:localhost%253A2584/" in web
    with pytest.raises(ValueError):
        image_url("http://a/img", "huge", DID, CID)
    with pytest.raises(ValueError):
        image_url("http://a/img", "avatar", DID, CID, "gif")


def test_parse_request_reads_the_path_and_refuses_bad_parts() -> None:
    wanted = parse_request("feed_fullsize", DID, f"{CID}@webp")
    assert (wanted.preset_name, wanted.did, wanted.cid.encode(), wanted.format) == (
        "feed_fullsize",
        DID,
        CID,
        "webp",
    )
    assert parse_request("avatar", DID, CID).format == "jpeg"  # no suffix: the default
    with pytest.raises(InvalidRequest, match="preset"):
        parse_request("poster", DID, f"{CID}@jpeg")
    with pytest.raises(InvalidRequest, match="format"):
        parse_request("avatar", DID, f"{CID}@bmp")
    with pytest.raises(InvalidCid):
        parse_request("avatar", DID, "bafynotacid@jpeg")
    with pytest.raises(InvalidCid, match="raw codec"):
        parse_request("avatar", DID, f"{cid_for_cbor(b'x').encode()}@jpeg")
    with pytest.raises(InvalidSyntax):
        parse_request("avatar", "did:nope", f"{CID}@jpeg")


@pytest.mark.parametrize(
    ("size", "preset", "expected"),
    [
        ((150, 87), Preset(500, 500, "inside"), (500, 290)),  # up, landscape
        ((87, 150), Preset(500, 500, "inside"), (290, 500)),  # up, portrait
        ((4000, 2320), Preset(500, 500, "inside"), (500, 290)),  # down
        ((150, 87), Preset(500, 500, "cover"), (862, 500)),  # covers, then cropped
        ((1, 10_000), Preset(2000, 2000, "inside"), (1, 2000)),
    ],
)
def test_scaled_size(size: tuple[int, int], preset: Preset, expected: tuple[int, int]) -> None:
    assert scaled_size(size, preset) == expected


def test_avatar_covers_and_crops_to_the_box() -> None:
    out = opened(render(jpeg_with_exif(300, 120), PRESETS["avatar"], "jpeg"))
    assert (out.format, out.size, out.mode) == ("JPEG", (1000, 1000), "RGB")
    left, right = out.getpixel((10, 500)), out.getpixel((990, 500))
    assert isinstance(left, tuple) and isinstance(right, tuple)
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0]  # red left, blue right


def test_exif_orientation_is_applied_then_all_metadata_dropped() -> None:
    # Stored 1600x900, EXIF says "rotate 90°": upright it is 900x1600.
    data = render(jpeg_with_exif(1600, 900, orientation=6), PRESETS["feed_fullsize"], "jpeg")
    out = opened(data)
    assert out.size == (563, 1000)
    assert len(out.getexif()) == 0 and b"Exif" not in data and CAMERA.encode() not in data
    assert "icc_profile" not in out.info


def test_transparency_is_kept_where_the_format_allows() -> None:
    png = opened(render(png_with_alpha(400, 200), PRESETS["feed_thumbnail"], "png"))
    assert (png.format, png.mode, png.size) == ("PNG", "RGBA", (2000, 1000))
    webp = opened(render(png_with_alpha(400, 200), PRESETS["feed_thumbnail"], "webp"))
    assert (webp.format, webp.mode) == ("WEBP", "RGBA")
    jpeg = opened(render(png_with_alpha(400, 200), PRESETS["feed_thumbnail"], "jpeg"))
    assert (jpeg.format, jpeg.mode) == ("JPEG", "RGB")


def test_a_sliver_image_is_cropped_before_scaling() -> None:
    out = opened(render(jpeg_with_exif(2, 4000), PRESETS["banner"], "jpeg"))
    assert out.size == (3000, 1000)


def test_not_an_image_and_too_many_pixels_are_refused() -> None:
    for junk in (b"", b"hello, not an image", jpeg_with_exif(100, 100)[:300]):
        with pytest.raises(InvalidRequest) as refused:
            render(junk, PRESETS["avatar"], "jpeg")
        assert refused.value.error == "NotAnImage"
    with pytest.raises(InvalidRequest) as refused:
        render(jpeg_with_exif(2000, 1000), PRESETS["avatar"], "jpeg", max_pixels=1_000_000)
    assert refused.value.error == "ImageTooLarge"


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    # 20000 x 20000 one-bit pixels compress to a few kilobytes of PNG.
    bomb = BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")
    assert len(bomb.getvalue()) < 200_000
    with pytest.raises(InvalidRequest) as refused:
        render(bomb.getvalue(), PRESETS["avatar"], "jpeg")
    assert refused.value.error == "ImageTooLarge"


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_palette_gif_with_transparency_renders_without_warnings(fmt: str) -> None:
    frame = Image.new("P", (120, 80), 0)
    frame.putpalette([255, 255, 255, 200, 0, 0] + [0, 0, 0] * 254)
    frame.paste(1, (0, 0, 60, 80))
    gif = BytesIO()
    frame.save(gif, "GIF", transparency=0)
    out = opened(render(gif.getvalue(), PRESETS["feed_fullsize"], fmt))
    assert out.size == (1000, 667)
    assert out.mode == ("RGB" if fmt == "jpeg" else "RGBA")


@pytest.mark.parametrize(
    "icc", [ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(), b"junk"]
)
def test_an_embedded_colour_profile_is_applied_or_ignored_never_kept(icc: bytes) -> None:
    source = BytesIO()
    Image.new("RGB", (50, 50), (10, 200, 30)).save(source, "JPEG", icc_profile=icc)
    data = render(source.getvalue(), PRESETS["avatar"], "jpeg")
    out = opened(data)
    assert "icc_profile" not in out.info and icc not in data
    pixel = out.getpixel((500, 500))
    assert isinstance(pixel, tuple) and pixel[1] > 150 > pixel[0]
