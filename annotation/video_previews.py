"""Previews of a video's frames with their masks already drawn, for the studio's timeline player.

While a video plays, the studio shows these JPEGs instead of decoding every object's RLE in the
browser, so playback keeps its pace however many objects a frame holds. A preview is the stored
frame with each of its annotations (bottom to top) filled in its label's colour at ``ALPHA`` and
outlined in that colour, as the studio's canvas draws them when paused.

The same door as the frame itself (``media_frame``): a member who may see the item, a video in
state ready, a frame that exists; anything else is a 404. Previews are made on request and never
stored: the ETag names the frame and its annotations' (id, version, label colour), so a browser
asks again each time (``no-cache``) and gets a 304 until an object on that frame changes.
"""

from __future__ import annotations

import hashlib
import io
import logging

import numpy as np
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_GET
from PIL import Image

from annotation.annotations.selectors import annotation_list
from annotation.masks import mask_decode
from annotation.models import Annotation, MediaItem
from annotation.selectors import media_get
from annotation.video_files import FRAME_CONTENT_TYPE
from annotation.video_services import frame_name
from platform_core.tenancy import member_required

logger = logging.getLogger(__name__)

ALPHA = 0.45  # the studio's default mask opacity
QUALITY = 90  # as the extracted frames
CACHE_CONTROL = "private, no-cache"
DEFAULT_COLOUR = (31, 119, 180)  # what the studio draws for a label without a usable colour
PREVIEW_FORMAT = "1"  # part of the ETag: bump when the drawing changes


@member_required
@require_GET
def media_frame_preview(request: HttpRequest, video_id: int, frame: int) -> HttpResponse:
    """Frame ``frame`` (from 0) of a ready video with its annotations' masks composited, as JPEG."""
    item = media_get(request.tenant, video_id)
    _require_frame(item, frame)
    annotations = list(annotation_list(request.tenant, item, frame=frame).select_related("label"))
    etag = preview_etag(item, frame, annotations)
    if etag in _etags(request.headers.get("If-None-Match", "")):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(frame_preview(item, frame, annotations), content_type=FRAME_CONTENT_TYPE)
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _require_frame(item: MediaItem, frame: int) -> None:
    ready = item.kind == MediaItem.Kind.VIDEO and item.state == MediaItem.State.READY and item.frames_prefix
    if not ready or frame >= (item.frame_count or 0):
        raise Http404("No such frame.")


def preview_etag(item: MediaItem, frame: int, annotations: list[Annotation]) -> str:
    """Changes whenever the preview would: another extraction, an object added, changed (its
    version), deleted or recoloured (its label's colour)."""
    parts = [PREVIEW_FORMAT, item.frames_prefix, str(frame)]
    parts += [f"{a.pk}:{a.version}:{a.label_id}:{a.label.color}" for a in annotations]
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + '"'


def frame_preview(item: MediaItem, frame: int, annotations: list[Annotation]) -> bytes:
    """The JPEG of the stored frame with ``annotations`` drawn on it, bottom to top; a frame
    without annotations is the stored JPEG itself."""
    try:
        with item.file.storage.open(frame_name(item.frames_prefix, frame), "rb") as handle:
            stored = handle.read()
    except FileNotFoundError:
        raise Http404("The stored frame is missing.") from None
    if not annotations:
        return stored
    with Image.open(io.BytesIO(stored)) as picture:
        pixels = np.asarray(picture.convert("RGB"), dtype=np.float32)
    for annotation in annotations:
        mask = mask_decode(annotation.rle)
        if mask.shape != pixels.shape[:2]:
            logger.warning("Annotation %s is %s, its frame %s: not drawn.", annotation.pk, mask.shape, pixels.shape)
            continue
        composite_mask(pixels, mask, label_rgb(annotation.label.color))
    out = io.BytesIO()
    Image.fromarray(np.rint(pixels).astype(np.uint8)).save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()


def composite_mask(pixels: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Tint ``pixels`` (float RGB, changed in place) toward ``colour`` inside ``mask`` and paint
    its outline: the mask's pixels with a 4-neighbour outside it (the image's edge counts as
    outside), as the studio's canvas outlines a mask."""
    rgb = np.array(colour, dtype=np.float32)
    pixels[mask] = pixels[mask] * (1 - ALPHA) + rgb * ALPHA
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    pixels[mask & ~interior] = rgb


def label_rgb(colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` as three integers; anything else is the studio's default blue."""
    text = str(colour or "")
    if len(text) != 7 or not text.startswith("#"):
        return DEFAULT_COLOUR
    try:
        value = int(text[1:], 16)
    except ValueError:
        return DEFAULT_COLOUR
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
