"""DAVIS-style mask PNGs: one indexed PNG per frame of a video, each pixel the 1-based number of the
object it belongs to (0 is background), with the DAVIS palette attached so that object 1 shows dark
red, object 2 green, and so on, as in the DAVIS and YouTube-VOS annotation folders.

The palette is the PASCAL VOC colour map that DAVIS uses: colour ``i`` takes the bits of ``i`` three
at a time, the lowest to red, the next to green, the next to blue, each from the top bit of its
channel down (colour 1 is (128, 0, 0), colour 8 is (64, 0, 0)).

An 8-bit index holds at most 255 objects per video. Where objects overlap on a frame, the one later
in ``order`` is drawn over the earlier ones; a PNG keeps one object per pixel.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

MAX_OBJECTS = 255


def davis_palette() -> np.ndarray:
    """The 256 colours of the DAVIS palette, shape ``(256, 3)``, uint8."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value = index
        for bit in range(7, -1, -1):
            for channel in range(3):
                palette[index, channel] |= ((value >> channel) & 1) << bit
            value >>= 3
    return palette


def frame_indices(masks: Mapping[int, np.ndarray], height: int, width: int, order: Sequence[int]) -> np.ndarray:
    """The ``(height, width)`` uint8 index array of one frame: 0 for background, ``n`` where the
    ``n``-th object of ``order`` is (later objects drawn over earlier ones). ``masks`` holds the
    objects present on the frame, by object id; every id must be in ``order``."""
    order = list(order)
    if len(order) > MAX_OBJECTS:
        raise ValueError(f"An indexed PNG holds at most {MAX_OBJECTS} objects, not {len(order)}.")
    if len(set(order)) != len(order):
        raise ValueError("The object order names an object more than once.")
    unknown = sorted(set(masks) - set(order), key=str)
    if unknown:
        raise ValueError(f"Objects {unknown} have masks but are not in the object order.")
    indices = np.zeros((height, width), dtype=np.uint8)
    for number, object_id in enumerate(order, start=1):
        mask = masks.get(object_id)
        if mask is None:
            continue
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(f"Object {object_id}'s mask is {mask.shape}, not the frame's ({height}, {width}).")
        indices[mask] = number
    return indices


def frame_png(masks: Mapping[int, np.ndarray], height: int, width: int, order: Sequence[int]) -> bytes:
    """The indexed PNG (mode ``P``, DAVIS palette) of one frame; see ``frame_indices``."""
    indices = frame_indices(masks, height, width, order)
    image = Image.frombytes("P", (width, height), indices.tobytes())
    image.putpalette(davis_palette().ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def read_frame_png(data: bytes) -> np.ndarray:
    """The ``(height, width)`` uint8 index array of an indexed (or 8-bit grey) mask PNG;
    ValueError for anything else."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise ValueError(f"Expected a PNG, got {image.format or 'an unknown format'}.")
            if image.mode not in ("P", "L"):
                raise ValueError(f"Expected an indexed PNG (mode P) of object numbers, got mode {image.mode}.")
            return np.array(image, dtype=np.uint8)
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"Not a readable PNG: {exc}") from None
