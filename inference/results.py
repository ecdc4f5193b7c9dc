"""What every segmenter returns, and how it reads the image it segments (torch-free)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from inference.prompts import BadImage

# An image: an RGB array (H, W, 3) uint8, a PIL image, a path, bytes, or a callable returning one of
# those (called only when the embedding is not already warm).
ImageSource = np.ndarray | Image.Image | str | Path | bytes | Callable[[], Any]


@dataclass(frozen=True)
class Candidate:
    mask: np.ndarray  # bool (H, W) in original-image pixels
    score: float
    low_res_logits: np.ndarray  # float32 (1, 256, 256): feed back as mask_input to refine


@dataclass(frozen=True)
class SegmentResult:
    mask: np.ndarray  # the chosen (best-scoring) mask, bool (H, W)
    score: float
    low_res_logits: np.ndarray  # float32 (1, 256, 256)
    model: str
    cache_hit: bool
    timings: dict[str, float]  # encode_ms (0 on a cache hit), decode_ms, total_ms
    untrained: bool = False
    fallback: bool = False
    candidates: list[Candidate] | None = field(default=None)  # every mask, when all were asked for


def load_rgb(source: ImageSource) -> np.ndarray:
    """The image as a contiguous RGB uint8 array (H, W, 3)."""
    if callable(source) and not isinstance(source, np.ndarray | Image.Image):
        source = source()
    if isinstance(source, str | Path | bytes):
        try:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
                source = opened.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise BadImage(f"The image cannot be read: {exc}") from exc
    if isinstance(source, Image.Image):
        source = np.asarray(source.convert("RGB"))
    if not isinstance(source, np.ndarray):
        raise BadImage(f"Unsupported image type {type(source).__name__}.")
    array = source
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise BadImage(f"Expected an (H, W, 3) RGB image, got shape {array.shape}.")
    if array.dtype != np.uint8:
        raise BadImage(f"Expected 8-bit pixels, got {array.dtype}.")
    return np.ascontiguousarray(array[:, :, :3])
