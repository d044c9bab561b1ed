"""Render a blob for a preset with Pillow: decode (bounded), turn upright, scale up or down to
the preset's box, convert to sRGB and re-encode without metadata (the reference appview's
`image/sharp.ts` processor does the same with sharp)."""

from __future__ import annotations

from io import BytesIO
from typing import Final

from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from appview.images.presets import FORMATS, Preset
from atcore.xrpc.errors import InvalidRequest

# The only decoders run on untrusted bytes: the formats clients upload for posts and profiles.
INPUT_FORMATS: Final = ("JPEG", "PNG", "WEBP", "GIF")
# Decoded pixels allowed per blob (48 MP phone photos pass; ~190 MB of RGB at most).
DEFAULT_MAX_PIXELS: Final = 64_000_000
# The reference encodes at quality 100 (its processor's default).
QUALITY: Final = 100
# EXIF orientations that turn the image a quarter: width and height swap once upright.
_QUARTER_TURNS: Final = frozenset({5, 6, 7, 8})
_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def render(data: bytes, preset: Preset, fmt: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The encoded rendition of image `data`; InvalidRequest when it is no image we decode or
    has more than `max_pixels` pixels. CPU-bound: run it in a worker thread."""
    try:
        with Image.open(BytesIO(data), formats=INPUT_FORMATS) as image:
            return _render(image, preset, fmt, max_pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidRequest(f"image too large to decode: {exc}", "ImageTooLarge") from exc
    except UnidentifiedImageError as exc:
        raise InvalidRequest("blob is not a JPEG, PNG, WebP or GIF image", "NotAnImage") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt image data, as Pillow's decoders report it.
        raise InvalidRequest(f"image cannot be decoded: {exc}", "NotAnImage") from exc


def _render(image: Image.Image, preset: Preset, fmt: str, max_pixels: int) -> bytes:
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidRequest(
            f"image is {width}x{height} pixels (limit {max_pixels})", "ImageTooLarge"
        )
    turned = image.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS
    upright = (height, width) if turned else (width, height)
    scaled = scaled_size(upright, preset)
    # JPEG can decode at 1/2, 1/4 or 1/8 scale while still covering `scaled`: less memory.
    image.draft(None, (scaled[1], scaled[0]) if turned else scaled)
    # Apply the orientation before the metadata carrying it is dropped.
    image = ImageOps.exif_transpose(image)
    image = _to_srgb(_output_mode(image, fmt))
    box = (preset.width, preset.height)
    if preset.fit == "cover":
        # Crops in source coordinates first, so a sliver image is never scaled up whole.
        image = ImageOps.fit(image, box, Image.Resampling.LANCZOS)
    else:
        image = image.resize(scaled, Image.Resampling.LANCZOS)
    # EXIF, XMP, ICC profiles and text chunks stay behind: only pixels are encoded.
    image.info = {}
    out = BytesIO()
    pillow_format = FORMATS[fmt][0]
    options = {"quality": QUALITY} if pillow_format in ("JPEG", "WEBP") else {}
    image.save(out, pillow_format, **options)
    return out.getvalue()


def scaled_size(size: tuple[int, int], preset: Preset) -> tuple[int, int]:
    """`size` scaled (up or down, aspect kept) to cover or fit inside the preset's box."""
    width, height = size
    ratios = (preset.width / width, preset.height / height)
    scale = max(ratios) if preset.fit == "cover" else min(ratios)
    # Halves round up, as sharp does (Python's round() would make 562.5 into 562).
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))


def _output_mode(image: Image.Image, fmt: str) -> Image.Image:
    """RGB for JPEG (any alpha is dropped, as the reference does); RGBA where the output
    format keeps transparency and the image has some; RGB otherwise."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha and fmt != "jpeg" else "RGB"
    return image if image.mode == mode else image.convert(mode)


def _to_srgb(image: Image.Image) -> Image.Image:
    """Pixels in sRGB, since the embedded profile saying otherwise is not kept."""
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    try:
        source = ImageCms.ImageCmsProfile(BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError):
        return image  # an unreadable profile: keep the pixels as they are
    return image if converted is None else converted
