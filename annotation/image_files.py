"""Validation and normalisation of uploaded image files.

Every accepted image is decoded and written anew, so what is stored holds pixels and nothing else:
bytes appended to a file (an HTML page after a PNG's end), comments, text chunks, EXIF and XMP are
gone. Only the colour profile is kept, and only as LittleCMS reads and writes it anew: bytes that are
no profile (a page hidden in the profile's place) or that trail one are dropped, and so is a profile
that no longer describes the pixels once they are converted (a CMYK profile on pixels made RGB).

The type is sniffed from the bytes (never taken from the name); size and pixel limits, and whether
the file can hold the pixels its header declares (PNG, Huffman-coded JPEG), are checked before
anything is decoded; EXIF orientation is applied once here, so every later coordinate refers to the
stored, upright image.

What comes out, by what comes in:

| in | out |
| --- | --- |
| JPEG (and a phone's MPO: its first, plain JPEG frame) | JPEG, quality 92, the source's chroma subsampling |
| PNG, BMP, TIFF, single-frame GIF | PNG (browsers cannot show TIFF; GIF's palette survives PNG intact) |
| WebP | WebP: lossless stays lossless, lossy is re-encoded at quality 90 |
| animated GIF / PNG / WebP, multi-page TIFF | refused (``multi_frame``) |
| SVG, HTML, anything else | refused (``unsupported_format`` / ``not_an_image``) |

Each upload also gets a WebP thumbnail (longest side ``THUMBNAIL_SIZE``), made from the same
decoded pixels. Memory: one full-size bitmap (Pillow keeps RGB as 4 bytes a pixel), a second only
while an EXIF rotation or a colour-mode change needs a source and a destination; the thumbnail is
reduced from the bitmap without another full-size copy.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import get_sampling

ImageSource = bytes | bytearray | memoryview | os.PathLike | IO[bytes]

THUMBNAIL_SIZE = 320
THUMBNAIL_CONTENT_TYPE = "image/webp"
JPEG_QUALITY = 92
WEBP_QUALITY = 90
THUMBNAIL_QUALITY = 80

# The only decoders Pillow may try: fewer parsers facing untrusted bytes, and none that hands the
# file to an outside program (EPS runs Ghostscript).
OPENED_FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]
# Pillow format -> the format it is stored as.
STORED_AS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "BMP": "PNG", "TIFF": "PNG", "GIF": "PNG", "WEBP": "WEBP"}
CONTENT_TYPES = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "WEBP": ("image/webp", ".webp")}
# Modes each encoder writes as they are; anything else is converted first.
SAVABLE_MODES = {
    "JPEG": {"L", "RGB"},
    "PNG": {"1", "L", "LA", "I", "I;16", "I;16B", "P", "RGB", "RGBA"},
    "WEBP": {"RGB", "RGBA"},
}
# What the decoders raise on a damaged file: Pillow is not consistent about it.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
# Deflate cannot shrink data more than 1032:1 (a 258-byte match in 2 bits), and no real encoder
# more than doubles it.
DEFLATE_MAX_RATIO = 1032
# JPEG frames whose pixel data is Huffman coded (baseline, extended, progressive): every 8×8 block of
# the first component costs at least one bit there. Arithmetic coding has no such floor.
JPEG_HUFFMAN_FRAMES = {0xC0, 0xC1, 0xC2}
HEAD_BYTES = 4096


@dataclass(frozen=True)
class NormalisedImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    thumbnail: bytes


def normalise_image(source: ImageSource) -> NormalisedImage:
    """Check an uploaded image and return the bytes to store and its thumbnail.

    ``source`` is the file's bytes, a path, or an open binary file (an ``UploadedFile``): a path or
    file is read where it lies, never held twice in memory. Anything wrong raises ValidationError
    with a readable message and one of the codes ``empty``, ``too_large``, ``not_an_image``,
    ``unsupported_format``, ``too_many_pixels``, ``size_mismatch``, ``multi_frame``, ``damaged``.
    """
    with _opened(source) as (fp, size):
        if size == 0:
            raise ValidationError("The file is empty.", code="empty")
        limit = settings.MAX_UPLOAD_BYTES
        if size > limit:
            raise ValidationError(f"The file is {size} bytes; the limit is {limit} bytes.", code="too_large")
        head = fp.read(HEAD_BYTES)
        fp.seek(0)
        _refuse_documents(head)
        with _open_image(fp) as image:
            fmt = image.format or ""
            width, height = image.size
            _check_pixels(width, height)
            _check_frames(image, fmt)
            if fmt == "PNG":
                _check_png_data_size(fp, size)
            elif fmt in ("JPEG", "MPO"):
                _check_jpeg_data_size(fp, size, width, height)
            target = STORED_AS[fmt]
            options = _save_options(image, fmt, head)
            upright = _decode_upright(image)
            data = _encode(upright, target, options)
            thumbnail = _thumbnail(upright, options.get("icc_profile"))
    content_type, extension = CONTENT_TYPES[target]
    return NormalisedImage(data, content_type, extension, upright.width, upright.height, thumbnail)


def make_thumbnail(source: ImageSource) -> bytes:
    """The WebP thumbnail of an already stored (normalised) image, for rows made before thumbnails."""
    with _opened(source) as (fp, _size), _open_image(fp) as image:
        _check_pixels(*image.size)
        icc = _clean_profile(image.info.get("icc_profile"))
        return _thumbnail(_decode_upright(image), icc)


# --- reading ---------------------------------------------------------------------------------


@contextmanager
def _opened(source: ImageSource) -> Iterator[tuple[IO[bytes], int]]:
    """A seekable binary file over ``source`` and its size in bytes, without reading it whole."""
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source), len(source)
    elif isinstance(source, os.PathLike):
        with open(source, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size
    elif hasattr(source, "read"):
        if not is_seekable(source):
            # A stream (a socket, a pipe): keep at most one byte past the limit in memory.
            data = source.read(settings.MAX_UPLOAD_BYTES + 1)
            yield io.BytesIO(data), len(data)
            return
        start = source.tell()
        size = source.seek(0, io.SEEK_END) - start
        source.seek(start)
        if start:
            # Pillow and the PNG check below address the file from its first byte.
            data = source.read()
            yield io.BytesIO(data), len(data)
        else:
            yield source, size
    else:
        raise TypeError(f"normalise_image takes bytes, a path or a binary file, not {type(source).__name__}.")


def is_seekable(fp: Any) -> bool:
    """Whether a file object can seek (a socket or a pipe cannot; some say so by raising)."""
    try:
        return bool(fp.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _refuse_documents(head: bytes) -> None:
    """Name the two text formats people most often upload as images; Pillow reads neither."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not text.startswith(b"<"):
        return
    if b"<svg" in text:
        raise ValidationError(
            "SVG drawings are not accepted: they are documents that can carry scripts. Export the drawing as PNG.",
            code="unsupported_format",
        )
    if any(tag in text for tag in (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe")):
        raise ValidationError(
            "The file is an HTML document, not an image, whatever its name says.", code="not_an_image"
        )


@contextmanager
def _open_image(fp: IO[bytes]) -> Iterator[Image.Image]:
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice it; the platform's own check follows.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=OPENED_FORMATS)
    except Image.DecompressionBombError:
        raise ValidationError(
            f"The image declares far more than the limit of {settings.MAX_IMAGE_PIXELS} pixels.",
            code="too_many_pixels",
        ) from None
    except UnidentifiedImageError:
        raise ValidationError(
            "The file is not an image this platform reads (JPEG, PNG, WebP, GIF, BMP or TIFF).", code="not_an_image"
        ) from None
    except DECODE_ERRORS:
        raise ValidationError("The image file is damaged: its header cannot be read.", code="damaged") from None
    with image:
        yield image


def _check_pixels(width: int, height: int) -> None:
    if width * height > settings.MAX_IMAGE_PIXELS:
        raise ValidationError(
            f"The image declares {width}×{height} pixels; the limit is {settings.MAX_IMAGE_PIXELS} pixels.",
            code="too_many_pixels",
        )
    if width == 0 or height == 0:
        raise ValidationError("The image declares no pixels at all.", code="damaged")


def _check_frames(image: Image.Image, fmt: str) -> None:
    if fmt == "MPO":
        # What many phone cameras write: a plain JPEG first frame, then previews or depth maps
        # that browsers skip. The first frame is what is kept.
        return
    try:
        frames = getattr(image, "n_frames", 1)
    except DECODE_ERRORS:
        # Counting GIF frames walks the whole file: a cut one fails here.
        raise ValidationError("The image file is damaged or truncated.", code="damaged") from None
    if frames > 1:
        raise ValidationError(
            "Animated and multi-page images are not accepted: upload each page as an image, or a clip as a video.",
            code="multi_frame",
        )


def _check_png_data_size(fp: IO[bytes], size: int) -> None:
    """Refuse a PNG whose pixel data cannot be what its header declares, before decoding it.

    Decoding would allocate the declared bitmap first (up to the pixel limit) and only then find
    out; the compressed size alone already tells a forged header from a real one.
    """
    fp.seek(8)
    header = fp.read(25)
    fp.seek(0)
    if len(header) < 25 or header[4:8] != b"IHDR":
        return  # Pillow opened it, so this cannot happen; the decoder reports anything odd.
    width, height, depth, colour, _compression, _filter, interlaced = struct.unpack(">IIBBBBB", header[8:21])
    bits = depth * PNG_CHANNELS.get(colour, 4)
    row = (width * bits + 7) // 8
    least = width * height * bits // 8  # the pixels alone, no filter bytes
    most = height * (row + 1) + (4 * height + 64 if interlaced else 0)
    found = _png_idat_bytes(fp, size)
    if found * DEFLATE_MAX_RATIO < least or found > 2 * most + 4096:
        raise ValidationError(
            f"The image header declares {width}×{height} pixels, but the file holds {found} bytes of pixel data, "
            "which cannot be that image: the file is damaged or forged.",
            code="size_mismatch",
        )


def _check_jpeg_data_size(fp: IO[bytes], size: int, width: int, height: int) -> None:
    """Refuse a JPEG too short to hold the image its header declares, before decoding it.

    The decoder would allocate the declared bitmap and fill what the file lacks with one flat
    colour, without an error; a whole file that cannot spend one bit on each 8×8 block is no
    photograph of that size, only a small file inflating into a large bitmap.
    """
    if _jpeg_frame_marker(fp, size) not in JPEG_HUFFMAN_FRAMES:
        return
    least = (width // 8) * (height // 8) // 8
    if size < least:
        raise ValidationError(
            f"The image header declares {width}×{height} pixels, but the file holds only {size} bytes, "
            "which cannot be that image: the file is damaged or forged.",
            code="size_mismatch",
        )


def _jpeg_frame_marker(fp: IO[bytes], size: int) -> int | None:
    """The start-of-frame marker (its second byte) of a JPEG, found by walking its segments."""
    position = 2
    try:
        while position + 4 <= size:
            fp.seek(position)
            segment = fp.read(4)
            if segment[0] != 0xFF:
                return None
            marker = segment[1]
            if marker == 0xFF:  # fill byte
                position += 1
            elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
                position += 2
            elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return marker
            elif marker in (0xD9, 0xDA):  # the image or its data starts before any frame
                return None
            else:
                position += 2 + struct.unpack(">H", segment[2:4])[0]
    finally:
        fp.seek(0)
    return None


def _png_idat_bytes(fp: IO[bytes], size: int) -> int:
    """How many bytes of compressed pixel data (IDAT chunks) the file really holds."""
    total, position = 0, 8
    try:
        while position + 8 <= size:
            fp.seek(position)
            length, kind = struct.unpack(">I4s", fp.read(8))
            if kind == b"IDAT":
                total += min(length, size - position - 8)
            elif kind == b"IEND":
                break
            position += 12 + length
    finally:
        fp.seek(0)
    return total


# --- decoding and writing --------------------------------------------------------------------


def _save_options(image: Image.Image, fmt: str, head: bytes) -> dict[str, Any]:
    """What to carry over into the new file: the colour profile, transparency, JPEG sampling."""
    options: dict[str, Any] = {}
    if icc := _clean_profile(image.info.get("icc_profile")):
        options["icc_profile"] = icc
    target = STORED_AS[fmt]
    if target == "JPEG":
        options["quality"] = JPEG_QUALITY
        sampling = get_sampling(image)
        if sampling >= 0:
            options["subsampling"] = sampling
    elif target == "WEBP":
        if _webp_is_lossless(head):
            options["lossless"] = True
        else:
            options["quality"] = WEBP_QUALITY
    elif target == "PNG" and image.mode in ("P", "L", "RGB", "1") and "transparency" in image.info:
        options["transparency"] = image.info["transparency"]
    return options


def _clean_profile(icc: bytes | None) -> bytes | None:
    """The colour profile as LittleCMS writes it after reading it, or None if it reads none."""
    if not icc:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc)).tobytes() or None
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None


def _profile_fits(icc: bytes, mode: str) -> bool:
    """Whether a profile describes pixels of this mode (an RGB profile RGB or palette pixels, a grey one grey)."""
    try:
        space = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space.strip()
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return False
    return space == {"RGB": "RGB", "RGBA": "RGB", "P": "RGB", "L": "GRAY", "LA": "GRAY"}.get(mode)


def _webp_is_lossless(head: bytes) -> bool:
    """A WebP's image chunk is VP8L when lossless, VP8 when lossy (alpha, in ALPH, is lossless either way)."""
    position = 12
    while position + 8 <= len(head):
        kind, length = head[position : position + 4], struct.unpack("<I", head[position + 4 : position + 8])[0]
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        position += 8 + length + (length & 1)
    return False


def _decode_upright(image: Image.Image) -> Image.Image:
    """Decode every pixel (a truncated file fails here, not later in the studio) and turn it upright."""
    try:
        image.load()
        # In place: the rotated bitmap replaces the decoded one instead of living beside it.
        # A no-op for TIFF, which Pillow already turns while loading.
        ImageOps.exif_transpose(image, in_place=True)
    except Image.DecompressionBombError:
        raise ValidationError(
            f"The image has more than the limit of {settings.MAX_IMAGE_PIXELS} pixels.", code="too_many_pixels"
        ) from None
    except DECODE_ERRORS:
        raise ValidationError("The image file is damaged or truncated.", code="damaged") from None
    # Nothing read from the source (comments, text, EXIF, XMP) may reach the new file.
    image.info = {}
    return image


def _encode(image: Image.Image, target: str, options: dict[str, Any]) -> bytes:
    if image.mode == "F":
        raise ValidationError(
            "Floating-point images are not accepted: save it as an 8- or 16-bit PNG or TIFF.",
            code="unsupported_format",
        )
    if image.mode not in SAVABLE_MODES[target]:
        image = image.convert("RGBA" if target != "JPEG" and image.has_transparency_data else "RGB")
        options.pop("transparency", None)
        if "icc_profile" in options and not _profile_fits(options["icc_profile"], image.mode):
            # Pillow's conversion does not use the profile: what it describes is gone.
            del options["icc_profile"]
    out = io.BytesIO()
    try:
        image.save(out, format=target, **options)
    except (OSError, ValueError):
        raise ValidationError(
            f"This image's pixel format ({image.mode}) cannot be stored.", code="unsupported_format"
        ) from None
    return out.getvalue()


def _thumbnail(image: Image.Image, icc: bytes | None = None) -> bytes:
    width, height = image.size
    scale = min(1.0, THUMBNAIL_SIZE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    source = _displayable(image)
    # reducing_gap: shrink by a whole factor first (cheap, into a small bitmap), then filter.
    small = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0) if size != source.size else source
    if small.mode not in ("RGB", "RGBA"):
        small = small.convert("RGBA" if small.has_transparency_data else "RGB")
    options: dict[str, Any] = {"quality": THUMBNAIL_QUALITY}
    if icc and _profile_fits(icc, small.mode):
        # A wide-gamut photo's thumbnail shows the same colours as the photo.
        options["icc_profile"] = icc
    out = io.BytesIO()
    small.save(out, format="WEBP", **options)
    return out.getvalue()


def _displayable(image: Image.Image) -> Image.Image:
    """The image in a mode Pillow resizes smoothly: palette and 1-bit images would be resized by
    nearest neighbour, and 16-bit ones would be clipped to white when made 8-bit."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode.startswith("I;16") or mode == "I":
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")
