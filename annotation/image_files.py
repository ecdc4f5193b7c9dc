"""Validation and normalisation of uploaded image files.

The file type is sniffed from the bytes (Pillow), never taken from the name; the pixel count is
checked before decoding so a decompression bomb is refused cheaply; EXIF orientation is applied
once here, so every later coordinate refers to the stored, upright image.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, ImageOps, UnidentifiedImageError

ORIENTATION = 0x0112  # the EXIF / TIFF orientation tag

# Pillow format name -> (content type, stored extension)
ACCEPTED_FORMATS = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
    "BMP": ("image/bmp", ".bmp"),
    "TIFF": ("image/tiff", ".tif"),
}


@dataclass(frozen=True)
class NormalisedImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


# Counting frames and reading EXIF can read the whole file (PNG keeps both after the pixels): on a
# truncated file they fail, and the decoding step below reports it as damaged.
def _frame_count(image: Image.Image) -> int:
    try:
        return getattr(image, "n_frames", 1)
    except (OSError, SyntaxError, ValueError, EOFError):
        return 1


def _orientation(image: Image.Image) -> int:
    try:
        return image.getexif().get(ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, EOFError):
        return 1


def normalise_image(data: bytes) -> NormalisedImage:
    """Check an uploaded image and return the bytes to store; ValidationError on anything wrong."""
    limit = settings.MAX_UPLOAD_BYTES
    if len(data) == 0:
        raise ValidationError("The file is empty.", code="empty")
    if len(data) > limit:
        raise ValidationError(f"The file is {len(data)} bytes; the limit is {limit}.", code="too_large")
    try:
        with warnings.catch_warnings():
            # Pillow warns past its own limit; the platform's limit is checked just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                width, height = probe.size
                frames = _frame_count(probe)
                # Read before decoding: Pillow applies a TIFF's orientation while loading it.
                orientation = _orientation(probe)
    except Image.DecompressionBombError:
        raise ValidationError(
            f"The image has far more than the limit of {settings.MAX_IMAGE_PIXELS} pixels.", code="too_many_pixels"
        ) from None
    except (UnidentifiedImageError, OSError):
        raise ValidationError("The file is not an image this platform reads.", code="not_an_image") from None
    if fmt == "MPO":
        # What many phone cameras write: a plain JPEG first frame, then previews or depth maps
        # that browsers and decoders skip. It is stored and served as the JPEG it starts with.
        fmt = "JPEG"
    elif frames > 1:
        raise ValidationError(
            "Animated and multi-page images are not accepted: upload each page as an image, or a clip as a video.",
            code="multi_frame",
        )
    if fmt not in ACCEPTED_FORMATS:
        raise ValidationError(f"{fmt} images are not accepted.", code="unsupported_format")
    if width * height > settings.MAX_IMAGE_PIXELS:
        raise ValidationError(
            f"The image has {width}×{height} pixels; the limit is {settings.MAX_IMAGE_PIXELS} pixels.",
            code="too_many_pixels",
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes every pixel: a truncated file fails here, not later in the studio
            if orientation in (0, 1):
                content_type, extension = ACCEPTED_FORMATS[fmt]
                return NormalisedImage(data, content_type, extension, image.width, image.height)
            # A no-op where Pillow already turned the pixels upright while loading (TIFF).
            upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ValidationError("The image file is damaged or truncated.", code="damaged") from None
    # Re-encode once, upright and without the orientation tag; PNG keeps the rest lossless.
    out = io.BytesIO()
    target = "JPEG" if fmt == "JPEG" else "PNG"
    try:
        upright.save(out, format=target, **({"quality": 95} if target == "JPEG" else {}))
    except (OSError, ValueError):
        raise ValidationError(f"This {fmt} image's pixel format is not supported.", code="unsupported_format") from None
    content_type, extension = ACCEPTED_FORMATS[target]
    return NormalisedImage(out.getvalue(), content_type, extension, upright.width, upright.height)
