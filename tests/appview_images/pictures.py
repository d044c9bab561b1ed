"""Real encoded test images made with Pillow, and reading back what the service returned."""

from __future__ import annotations

from io import BytesIO

from PIL import ExifTags, Image

CAMERA = "SpyCam 3000"  # an EXIF Make that must never come back out


def jpeg_with_exif(width: int, height: int, *, orientation: int = 1) -> bytes:
    """A JPEG whose left half is red and right half blue, carrying EXIF (camera, orientation)."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((30, 30, 200), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = CAMERA
    exif[ExifTags.Base.Orientation] = orientation
    out = BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def png_with_alpha(width: int, height: int) -> bytes:
    image = Image.new("RGBA", (width, height), (0, 128, 0, 0))
    image.paste((0, 128, 0, 255), (0, 0, width // 2, height))
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image
