"""The one mask module: COCO run-length encoding (RLE) on pycocotools, for the studio, inference,
gold scoring, agreement and exports.

A mask is a boolean array of ``(height, width)`` in original-image pixels. Its RLE is COCO's
compressed form, ``{"size": [h, w], "counts": "<str>"}``: runs counted down the columns (Fortran
order), starting with a run of zeros (which may be empty), each count delta-coded against the count
two before it and written six bits to a character, as pycocotools' ``rleToString`` writes it.
Counts are a ``str`` here, never ``bytes``, so an RLE is JSON as it stands.

RLE from outside (a browser, an import, a script) goes through ``rle_validate`` before anything
else touches it. pycocotools' C code trusts its input: a counts string that ends inside a number
makes it read past the string, and counts that add up to more than ``h × w`` make its decoder write
past the mask. So the counts are parsed here first, with the same arithmetic as ``rleFrString``,
and refused unless every run is non-negative and the runs cover exactly ``h × w`` pixels.
``rle_validate`` accepts counts in the compressed string form and, for COCO's uncompressed form
(``"counts": [int, ...]``, as in ``iscrowd`` annotations of COCO files), as a list of run lengths;
both come back in the canonical compressed form pycocotools' encoder makes for the same mask (empty
runs in the middle merged away), so equal masks have equal RLE.

Polygons and boxes are rasterised with pycocotools' ``frPyObjects`` (its polygon scan converter),
the same semantics the studio reproduces, so what the server computes from drawn geometry is what
a person saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from pycocotools import mask as coco_mask

# pycocotools reads each count with C ``int`` shifts of five bits per character: six characters
# (30 bits) is the most it reads without overflowing, enough for images of 500 million pixels.
MAX_CHARS_PER_COUNT = 6
# Drawn geometry may reach past the image (a polygon's corner dragged off the edge) but not
# without bound: the scan converter walks every edge pixel by pixel.
GEOMETRY_MARGIN = 1.0
# pycocotools counts runs in unsigned 32-bit numbers.
MAX_PIXELS = 2**31


def _bad(message: str, code: str = "bad_rle") -> ValidationError:
    return ValidationError(message, code=code)


def _size(rle: Any) -> tuple[int, int]:
    if not isinstance(rle, dict):
        raise _bad('Give the mask as an RLE object: {"size": [height, width], "counts": "…"}.')
    missing = [key for key in ("size", "counts") if key not in rle]
    if missing:
        raise _bad(f"The RLE has no {' or '.join(repr(key) for key in missing)}.")
    size = rle["size"]
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(n, int | np.integer) and not isinstance(n, bool) for n in size)
        or min(size) < 1
    ):
        raise _bad("The RLE's size must be [height, width], two whole numbers of at least 1.")
    if int(size[0]) * int(size[1]) > MAX_PIXELS:
        raise _bad(f"The RLE's size {size[0]}×{size[1]} is larger than any image here.")
    return int(size[0]), int(size[1])


def _counts_from_string(counts: str | bytes) -> np.ndarray:
    """The run lengths of a compressed counts string, as pycocotools' ``rleFrString`` reads them."""
    if isinstance(counts, str):
        try:
            raw = counts.encode("ascii")
        except UnicodeEncodeError:
            raise _bad("The RLE's counts hold characters that are not part of COCO's encoding.") from None
    else:
        raw = bytes(counts)
    if not raw:
        return np.zeros(0, dtype=np.int64)
    chars = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if chars.min() < 0 or chars.max() > 63:
        raise _bad("The RLE's counts hold characters that are not part of COCO's encoding.")
    more = (chars & 0x20) != 0
    if more[-1]:
        raise _bad("The RLE's counts end in the middle of a number.")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > MAX_CHARS_PER_COUNT:
        raise _bad("The RLE's counts hold a number too large for COCO's encoding.")
    group = np.repeat(np.arange(len(starts)), lengths)
    shift = 5 * (np.arange(len(chars)) - starts[group])
    values = np.add.reduceat((chars & 0x1F) << shift, starts)
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * lengths[negative])
    # From the fourth count on, each is stored as the difference from the count two before it.
    counts_out = values.copy()
    counts_out[1::2] = np.cumsum(values[1::2])
    counts_out[2::2] = np.cumsum(values[2::2])
    return counts_out


def _counts_from_list(counts: list | tuple, total: int) -> np.ndarray:
    if len(counts) > total + 1:
        raise _bad("The RLE has more runs than the mask has pixels.")
    if not all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in counts):
        raise _bad("The RLE's counts must be whole numbers.")
    try:
        return np.asarray(counts, dtype=np.int64)
    except OverflowError:
        raise _bad(f"The RLE's runs cover more pixels than its size has ({total}).") from None


def _canonical(counts: np.ndarray) -> np.ndarray:
    """Merge empty runs away, as pycocotools' encoder never writes them (except the first)."""
    if counts.size <= 1 or not (counts[1:] == 0).any():
        return counts
    merged: list[int] = [int(counts[0])]
    for index, count in enumerate(counts[1:].tolist(), start=1):
        if count == 0:
            continue
        value = index % 2  # runs alternate 0, 1, 0, …; the run ``merged[-1]`` has value len-1 % 2
        if (len(merged) - 1) % 2 == value:
            merged[-1] += count
        else:
            merged.append(count)
    return np.asarray(merged, dtype=np.int64)


def _parse(rle: Any) -> tuple[int, int, np.ndarray]:
    """``(height, width, run lengths)`` of an RLE, checked so that pycocotools may safely read it."""
    height, width = _size(rle)
    counts = rle["counts"]
    if isinstance(counts, str | bytes):
        runs = _counts_from_string(counts)
    elif isinstance(counts, list | tuple):
        runs = _counts_from_list(counts, height * width)
    else:
        raise _bad("The RLE's counts must be COCO's compressed string (or a list of run lengths).")
    if runs.size == 0:
        raise _bad("The RLE's counts are empty: they must cover every pixel of the mask.")
    if (runs < 0).any():
        raise _bad("The RLE's counts hold a negative run: they do not decode to a mask.")
    total = int(runs.sum())
    if total != height * width:
        raise _bad(
            f"The RLE's runs cover {total} pixels but its size {height}×{width} has {height * width}: "
            "the counts do not decode to a mask of that size."
        )
    return height, width, runs


def _from_runs(height: int, width: int, runs: np.ndarray) -> dict:
    # pycocotools writes the compressed string of an uncompressed RLE without touching the pixels.
    coded = coco_mask.frPyObjects({"size": [height, width], "counts": runs.tolist()}, height, width)
    return _plain(coded)


def _plain(rle: dict) -> dict:
    counts = rle["counts"]
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def _for_coco(rle: Any) -> dict:
    """A checked RLE in the form pycocotools' functions take (compressed counts)."""
    height, width, runs = _parse(rle)
    if isinstance(rle["counts"], list | tuple):
        return _from_runs(height, width, _canonical(runs))
    return {"size": [height, width], "counts": rle["counts"]}


def mask_encode(mask: np.ndarray) -> dict:
    """The compressed RLE of a 2-D mask (any dtype; non-zero is set)."""
    array = np.asarray(mask)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"Expected a non-empty 2-D mask, got shape {array.shape}.")
    return _plain(coco_mask.encode(np.asfortranarray(array != 0, dtype=np.uint8)))


def mask_decode(rle: dict) -> np.ndarray:
    """The boolean ``(h, w)`` mask of an RLE; ValidationError (``bad_rle``) for one that is not."""
    return coco_mask.decode(_for_coco(rle)).astype(bool)


def rle_validate(rle: Any, *, height: int, width: int) -> dict:
    """The canonical compressed form of ``rle`` for an item of ``height`` × ``width`` pixels.

    Raises ValidationError with code ``bad_rle`` (not an RLE, or counts that do not decode),
    ``wrong_size`` (the size is not the item's) or ``empty`` (no pixel is set)."""
    rle_height, rle_width = _size(rle)
    if (rle_height, rle_width) != (height, width):
        raise _bad(
            f"The mask is {rle_height}×{rle_width} (height × width) but the item is {height}×{width}: "
            "send the mask at the image's original size.",
            code="wrong_size",
        )
    _, _, runs = _parse(rle)
    runs = _canonical(runs)
    if int(runs[1::2].sum()) == 0:
        raise _bad("The mask is empty: it has no pixel set.", code="empty")
    return _from_runs(height, width, runs)


def rle_area(rle: dict) -> int:
    """The number of pixels set."""
    return int(coco_mask.area(_for_coco(rle)))


def rle_bbox(rle: dict) -> list[float]:
    """``[x, y, width, height]`` of the pixels set (all zero for an empty mask), as COCO gives it."""
    return [float(v) for v in coco_mask.toBbox(_for_coco(rle))]


def rle_iou(a: dict, b: dict) -> float:
    """Intersection over union of two masks of the same size (0 when both are empty)."""
    first, second = _for_coco(a), _for_coco(b)
    if first["size"] != second["size"]:
        raise ValueError(f"Masks of different sizes: {first['size']} and {second['size']}.")
    return float(coco_mask.iou([first], [second], [0])[0][0])


def _point(value: Any, what: str) -> tuple[float, float]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise _bad(f"Each {what} must be a pair of finite numbers [x, y].", code="bad_geometry")
    return float(value[0]), float(value[1])


def _within_margin(xs: Sequence[float], ys: Sequence[float], height: int, width: int) -> None:
    if (
        min(xs) < -GEOMETRY_MARGIN * width
        or max(xs) > (1 + GEOMETRY_MARGIN) * width
        or min(ys) < -GEOMETRY_MARGIN * height
        or max(ys) > (1 + GEOMETRY_MARGIN) * height
    ):
        raise _bad("The shape reaches too far outside the image.", code="bad_geometry")


def _check_size(height: int, width: int) -> None:
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in (height, width)):
        raise ValueError(f"Height and width must be positive whole numbers, got {height}×{width}.")


def polygon_to_rle(points: Sequence[Sequence[float]], *, height: int, width: int) -> dict:
    """The mask of a polygon ``[[x, y], ...]`` (original-image pixels, at least three vertices),
    rasterised as pycocotools' ``frPyObjects`` does; ValidationError (``bad_geometry``) otherwise."""
    _check_size(height, width)
    if not isinstance(points, list | tuple) or len(points) < 3:
        raise _bad("A polygon needs at least three vertices.", code="bad_geometry")
    pairs = [_point(p, "vertex") for p in points]
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    _within_margin(xs, ys, height, width)
    flat = [coordinate for pair in pairs for coordinate in pair]
    return _plain(coco_mask.merge(coco_mask.frPyObjects([flat], height, width)))


def box_to_rle(box: Sequence[float], *, height: int, width: int) -> dict:
    """The mask of a box ``[x0, y0, x1, y1]`` (any two opposite corners), rasterised as
    pycocotools' ``frPyObjects`` does for the COCO box ``[x, y, w, h]``."""
    _check_size(height, width)
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise _bad("A box is four numbers [x0, y0, x1, y1].", code="bad_geometry")
    (x0, y0), (x1, y1) = _point(box[:2], "corner"), _point(box[2:], "corner")
    _within_margin([x0, x1], [y0, y1], height, width)
    left, top = min(x0, x1), min(y0, y1)
    coco_box = np.array([[left, top, abs(x1 - x0), abs(y1 - y0)]], dtype=np.float64)
    return _plain(coco_mask.frPyObjects(coco_box, height, width)[0])
