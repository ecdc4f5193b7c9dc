"""Crowd work measured on the server: what a worker drew turned into a mask, and answers and masks
scored against gold.

The mask task page sends the outline a worker drew as polygons in the picture's own pixels,
``{"size": [height, width], "polygons": [[[x, y], ...], ...]}``; the server rasterises them with
pycocotools (``annotation.masks.polygon_to_rle``) and merges them into one compressed RLE, so there is
one RLE code path and the browser never encodes a mask. ``size`` is the picture size the page drew
on: a page that saw another size (a stale or rescaled picture) is refused rather than stretched.

Gold answers are right when they are the gold choice; gold masks score their IoU with the gold mask
(pycocotools' ``iou``) and are right at or above the project's ``QualificationTest.iou_threshold``
(``DEFAULT_IOU_THRESHOLD`` without a test).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from django.core.exceptions import ValidationError
from pycocotools import mask as coco_mask

from annotation.masks import polygon_to_rle, rle_iou, rle_validate
from crowd.models import QualificationTest

logger = logging.getLogger(__name__)

DEFAULT_IOU_THRESHOLD = 0.7
# Limits on one drawing: far more than an outline needs, small enough to rasterise at once.
MAX_DRAWING_CHARS = 512 * 1024
MAX_POLYGONS = 100
MAX_VERTICES = 5000


def _refuse(message: str, code: str) -> ValidationError:
    return ValidationError(message, code=code)


def _load(raw: str) -> dict[str, Any]:
    if not raw or not raw.strip():
        raise _refuse("Draw the outline of the object before submitting.", "empty")
    if len(raw) > MAX_DRAWING_CHARS:
        raise _refuse("The drawing is too large: use fewer points.", "too_large")
    try:
        drawing = json.loads(raw)
    except ValueError:
        raise _refuse("The drawing could not be read: reload the page and draw again.", "bad_drawing") from None
    if not isinstance(drawing, dict) or not isinstance(drawing.get("polygons"), list):
        raise _refuse("The drawing could not be read: reload the page and draw again.", "bad_drawing")
    return drawing


def _check_size(drawing: dict[str, Any], *, height: int, width: int) -> None:
    size = drawing.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(type(n) is int for n in size)):
        raise _refuse("The drawing does not say the size of the picture it was drawn on.", "bad_drawing")
    if size != [height, width]:
        raise _refuse(
            f"The drawing was made on a picture of {size[0]}×{size[1]} pixels but the picture is "
            f"{height}×{width}: reload the page and draw again.",
            "wrong_size",
        )


def _vertex(value: Any, *, height: int, width: int, shape: int) -> list[float]:
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise _refuse(f"Shape {shape} has a point that is not a pair of numbers.", "bad_polygon")
    x, y = float(value[0]), float(value[1])
    if not (0 <= x <= width and 0 <= y <= height):
        raise _refuse(
            f"Shape {shape} has a point outside the picture ({x:g}, {y:g}); the picture is {width}×{height}.",
            "out_of_bounds",
        )
    return [x, y]


def _polygons(drawing: dict[str, Any], *, height: int, width: int) -> list[list[list[float]]]:
    polygons = drawing["polygons"]
    if not polygons:
        raise _refuse("Draw the outline of the object before submitting.", "empty")
    if len(polygons) > MAX_POLYGONS:
        raise _refuse(f"Use at most {MAX_POLYGONS} shapes.", "too_large")
    checked = []
    for number, polygon in enumerate(polygons, start=1):
        if not isinstance(polygon, list) or len(polygon) < 3:
            raise _refuse(f"Shape {number} needs at least three points.", "bad_polygon")
        if len(polygon) > MAX_VERTICES:
            raise _refuse(f"Shape {number} has more than {MAX_VERTICES} points.", "too_large")
        checked.append([_vertex(v, height=height, width=width, shape=number) for v in polygon])
    return checked


def mask_from_drawing(raw: str, *, height: int, width: int) -> dict:
    """The compressed RLE of the polygons a worker drew on a picture of ``height`` × ``width``;
    ValidationError with a message for the worker (and a code) when the drawing is unusable."""
    drawing = _load(raw)
    _check_size(drawing, height=height, width=width)
    polygons = _polygons(drawing, height=height, width=width)
    rles = [polygon_to_rle(polygon, height=height, width=width) for polygon in polygons]
    merged = coco_mask.merge(rles) if len(rles) > 1 else rles[0]
    counts = merged["counts"]
    rle = {"size": [height, width], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
    try:
        return rle_validate(rle, height=height, width=width)
    except ValidationError as exc:
        if exc.code == "empty":
            raise _refuse("The outline covers no pixel of the picture: draw it larger.", "empty") from None
        raise


def iou_threshold(project_id: int) -> float:
    """The IoU a mask needs to count as right on this project."""
    value = QualificationTest.objects.filter(project=project_id).values_list("iou_threshold", flat=True).first()
    return DEFAULT_IOU_THRESHOLD if value is None else value


def mask_score(rle: dict, gold_rle: dict) -> float | None:
    """IoU of a worker's mask with the gold mask; None when the gold mask does not fit the picture
    (a gold item set up wrongly is not held against the worker)."""
    try:
        return rle_iou(rle, gold_rle)
    except (ValueError, ValidationError):
        logger.warning(
            "Gold mask of size %s cannot be compared with a mask of size %s", gold_rle.get("size"), rle["size"]
        )
        return None
