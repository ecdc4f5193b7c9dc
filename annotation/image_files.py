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
    except Image.DecompressionBombError:
        raise ValidationError(
            f"The image has far more than the limit of {settings.MAX_IMAGE_PIXELS} pixels.", code="too_many_pixels"
        ) from None
    except (UnidentifiedImageError, OSError):
        raise ValidationError("The file is not an image this platform reads.", code="not_an_image") from None
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
            orientation = image.getexif().get(0x0112, 1)
            if orientation == 1:
                content_type, extension = ACCEPTED_FORMATS[fmt]
                return NormalisedImage(data, content_type, extension, image.width, image.height)
            upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ValidationError("The image file is damaged or truncated.", code="damaged") from None
    # Re-encode once with the orientation applied; PNG keeps it lossless.
    out = io.BytesIO()
    if fmt == "JPEG":
        upright.save(out, format="JPEG", quality=95)
    else:
        upright.save(out, format="PNG")
        fmt = "PNG"
    content_type, extension = ACCEPTED_FORMATS[fmt]
    return NormalisedImage(out.getvalue(), content_type, extension, upright.width, upright.height)
