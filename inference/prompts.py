"""Prompt validation and the errors every segmenter raises.

Prompts arrive in original-image pixels: points ``[[x, y, label], ...]`` (label 1 positive, 0 negative)
and an optional box ``[x0, y0, x1, y1]``, plus optional low-resolution logits from an earlier result
of the same object (SAM's mask input, 256 × 256). A point or box edge may lie on the image's far
border (``x == width``), the continuous coordinate SAM normalises by; nothing may lie outside it.

Everything here is free of torch so that a websocket consumer can validate a message before it hands
it to an inference worker.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_POINTS = 64
LOW_RES_SIZE = 256  # SAM's mask input and low-resolution logits are 256 × 256


class InferenceError(ValueError):
    """A request the inference layer refuses; ``code`` is stable and machine-readable."""

    code = "inference_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class PromptError(InferenceError):
    code = "bad_prompt"


class UnknownModel(InferenceError):
    code = "unknown_model"


class ModelUnavailable(InferenceError):
    code = "model_unavailable"


class BadImage(InferenceError):
    code = "bad_image"


@dataclass(frozen=True)
class Prompt:
    """A validated prompt, in the arrays ``SAM2ImagePredictor.predict`` takes."""

    point_coords: np.ndarray | None  # (N, 2) float32, x then y
    point_labels: np.ndarray | None  # (N,) int32
    box: np.ndarray | None  # (4,) float32, x0 y0 x1 y1
    mask_input: np.ndarray | None  # (1, 256, 256) float32 logits

    @property
    def n_points(self) -> int:
        return 0 if self.point_labels is None else int(self.point_labels.shape[0])

    def positive_points(self) -> list[tuple[float, float]]:
        if self.point_coords is None or self.point_labels is None:
            return []
        return [
            (float(x), float(y)) for (x, y), label in zip(self.point_coords, self.point_labels, strict=True) if label
        ]

    def negative_points(self) -> list[tuple[float, float]]:
        if self.point_coords is None or self.point_labels is None:
            return []
        return [
            (float(x), float(y))
            for (x, y), label in zip(self.point_coords, self.point_labels, strict=True)
            if not label
        ]


def _number(value: Any) -> float | None:
    # bool is an int subclass; a JSON true is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _points(points: Any, *, width: int, height: int, max_points: int) -> tuple[np.ndarray, np.ndarray] | None:
    if points is None:
        return None
    if isinstance(points, str | bytes) or not isinstance(points, Sequence | np.ndarray):
        raise PromptError("points must be a list of [x, y, label] triples.", code="bad_points")
    if len(points) == 0:
        return None
    if len(points) > max_points:
        raise PromptError(f"At most {max_points} points per prompt.", code="too_many_points")
    coords = np.empty((len(points), 2), dtype=np.float32)
    labels = np.empty((len(points),), dtype=np.int32)
    for index, point in enumerate(points):
        if isinstance(point, str | bytes) or not isinstance(point, Sequence | np.ndarray) or len(point) != 3:
            raise PromptError(f"Point {index} is not an [x, y, label] triple.", code="bad_point")
        x, y = _number(point[0]), _number(point[1])
        if x is None or y is None:
            raise PromptError(f"Point {index} has coordinates that are not finite numbers.", code="bad_point")
        label = point[2]
        if isinstance(label, bool) or _number(label) not in (0.0, 1.0):
            raise PromptError(f"Point {index} has label {label!r}: use 1 (positive) or 0 (negative).", code="bad_label")
        if not (0 <= x <= width and 0 <= y <= height):
            raise PromptError(
                f"Point {index} ({x:g}, {y:g}) lies outside the {width} × {height} image.",
                code="point_outside_image",
            )
        coords[index] = (x, y)
        labels[index] = int(label)
    return coords, labels


def _box(box: Any, *, width: int, height: int) -> np.ndarray | None:
    if box is None:
        return None
    if isinstance(box, str | bytes) or not isinstance(box, Sequence | np.ndarray) or len(box) != 4:
        raise PromptError("box must be [x0, y0, x1, y1].", code="bad_box")
    values = [_number(value) for value in box]
    if any(value is None for value in values):
        raise PromptError("box coordinates must be finite numbers.", code="bad_box")
    x0, y0, x1, y1 = values  # type: ignore[misc]
    if not (x0 < x1 and y0 < y1):
        raise PromptError("box must have x0 < x1 and y0 < y1.", code="bad_box")
    if not (0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height):
        raise PromptError(f"box lies outside the {width} × {height} image.", code="box_outside_image")
    return np.array([x0, y0, x1, y1], dtype=np.float32)


def _mask_input(mask_input: Any) -> np.ndarray | None:
    if mask_input is None:
        return None
    try:
        array = np.asarray(mask_input, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise PromptError("mask_input must be an array of logits.", code="bad_mask_input") from exc
    if array.size != LOW_RES_SIZE * LOW_RES_SIZE or array.shape[-2:] != (LOW_RES_SIZE, LOW_RES_SIZE):
        raise PromptError(
            f"mask_input must be {LOW_RES_SIZE} × {LOW_RES_SIZE} low-resolution logits, not {array.shape}.",
            code="bad_mask_input",
        )
    if not np.isfinite(array).all():
        raise PromptError("mask_input holds values that are not finite.", code="bad_mask_input")
    return array.reshape(1, LOW_RES_SIZE, LOW_RES_SIZE)


def parse_prompt(
    *,
    points: Any,
    box: Any = None,
    mask_input: Any = None,
    width: int,
    height: int,
    max_points: int = MAX_POINTS,
) -> Prompt:
    """Validate a prompt against an image of ``width`` × ``height`` pixels; raise ``PromptError``."""
    parsed_points = _points(points, width=width, height=height, max_points=max_points)
    parsed_box = _box(box, width=width, height=height)
    if parsed_points is None and parsed_box is None:
        raise PromptError("A prompt needs at least one point or a box.", code="no_prompt")
    coords, labels = parsed_points if parsed_points is not None else (None, None)
    return Prompt(point_coords=coords, point_labels=labels, box=parsed_box, mask_input=_mask_input(mask_input))
