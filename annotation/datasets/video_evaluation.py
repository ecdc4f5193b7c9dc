"""Video object segmentation scores, as the DAVIS benchmark defines them: region similarity J and
boundary accuracy F per object, between a reference annotation set and a candidate set of the same
video.

- J (``region_j``): intersection over union of the two masks; 1.0 when both are empty.
- F (``boundary_f``): each mask's boundary is the one-pixel outline DAVIS' ``seg2bmap`` draws (a
  pixel is on it when it differs from its right, lower or lower-right neighbour, so the outline
  lies half a pixel towards the origin). A boundary pixel of one mask counts as matched when a
  boundary pixel of the other lies within a disk of radius ``ceil(bound_th × image diagonal)``
  pixels (``bound_th`` itself when it is 1 or more); precision is the candidate's matched share,
  recall the reference's, and F = 2PR / (P + R). Both boundaries empty: 1.0; one empty: 0.0. As in
  DAVIS, a mask covering the whole frame has no boundary.
- Per object (``evaluate_tracks``): J and F are averaged over the frames where the object is in
  either set; a frame where it is in neither is skipped, a frame where it is in only one scores 0
  for both. Overall: the mean over objects of their J means and of their F means, and J&F, the
  mean of the two. An object that is in neither set on any frame has no scores and is left out of
  the overall means. Candidate objects that no reference object is paired with are not scored
  (DAVIS' semi-supervised protocol scores the reference objects). Every frame counts, the first
  included (DAVIS leaves out the first and last frame, where its methods were given the masks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypedDict

import cv2
import numpy as np

from annotation.masks import mask_decode

BOUND_TH = 0.008  # DAVIS' default: 0.8% of the image diagonal


def region_j(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one size; 1.0 when both are empty."""
    a, b = _pair(a, b)
    union = int(np.count_nonzero(a | b))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(a & b)) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The one-pixel boundary of a boolean mask, as DAVIS' ``seg2bmap`` draws it."""
    mask = np.asarray(mask, dtype=bool)
    east = np.zeros_like(mask)
    south = np.zeros_like(mask)
    south_east = np.zeros_like(mask)
    east[:, :-1] = mask[:, 1:]
    south[:-1, :] = mask[1:, :]
    south_east[:-1, :-1] = mask[1:, 1:]
    boundary = (mask ^ east) | (mask ^ south) | (mask ^ south_east)
    # The last row and column have no neighbour beyond the frame: only the one along the edge counts.
    boundary[-1, :] = mask[-1, :] ^ east[-1, :]
    boundary[:, -1] = mask[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def disk(radius: int) -> np.ndarray:
    """The pixels within ``radius`` of the centre, a ``(2r + 1, 2r + 1)`` uint8 kernel."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """The matching radius in pixels: ``bound_th`` of the image diagonal, rounded up, or
    ``bound_th`` itself when it is a whole number of 1 or more."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"A bound_th of 1 or more is a radius in whole pixels, not {bound_th}.")
        return int(bound_th)
    if bound_th <= 0:
        raise ValueError(f"bound_th must be positive, not {bound_th}.")
    return math.ceil(bound_th * math.hypot(*shape))


def boundary_f(a: np.ndarray, b: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """DAVIS' boundary F measure of candidate ``a`` against reference ``b`` (it is symmetric)."""
    a, b = _pair(a, b)
    radius = boundary_radius(a.shape, bound_th)
    a, b = _around_objects(a, b)
    a_boundary, b_boundary = boundary_map(a), boundary_map(b)
    a_count, b_count = int(np.count_nonzero(a_boundary)), int(np.count_nonzero(b_boundary))
    if a_count == 0 and b_count == 0:
        return 1.0
    if a_count == 0 or b_count == 0:
        return 0.0
    kernel = disk(radius)
    a_near = cv2.dilate(a_boundary.astype(np.uint8), kernel).astype(bool)
    b_near = cv2.dilate(b_boundary.astype(np.uint8), kernel).astype(bool)
    precision = int(np.count_nonzero(a_boundary & b_near)) / a_count
    recall = int(np.count_nonzero(b_boundary & a_near)) / b_count
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _around_objects(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the box around their pixels, one pixel wider each way (within the frame):
    every boundary pixel lies in it, and its edges hold the same boundary pixels as the whole frame
    does, so F is the same, at a fraction of the cost for small objects."""
    rows = np.flatnonzero((a | b).any(axis=1))
    if not rows.size:
        return a, b
    columns = np.flatnonzero((a | b).any(axis=0))
    height, width = a.shape
    top, bottom = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, height)
    left, right = max(int(columns[0]) - 1, 0), min(int(columns[-1]) + 2, width)
    return a[top:bottom, left:right], b[top:bottom, left:right]


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.ndim != 2 or a.shape != b.shape or 0 in a.shape:
        raise ValueError(f"Expected two non-empty 2-D masks of one size, got {a.shape} and {b.shape}.")
    return a, b


# --- per object over a video --------------------------------------------------------------------------

Track = Mapping[int, dict]  # frame → compressed RLE


class ObjectScores(TypedDict):
    candidate: int  # the candidate track compared with this reference object
    J_mean: float | None
    F_mean: float | None
    JF_mean: float | None
    frames: int  # frames scored: those where the object is in either set


class VideoScores(TypedDict):
    objects: dict[int, ObjectScores]  # by reference track id
    J_mean: float | None
    F_mean: float | None
    JF_mean: float | None


def evaluate_tracks(
    reference: Mapping[int, Track],
    candidate: Mapping[int, Track],
    *,
    length: int,
    pairs: Mapping[int, int] | None = None,
    bound_th: float = BOUND_TH,
) -> VideoScores:
    """J and F of every reference object against its candidate over the ``length`` frames of one
    video. ``reference`` and ``candidate`` map a track id to ``{frame: RLE}``; ``pairs`` maps a
    reference track id to a candidate track id (None: tracks are paired by equal id). ValueError
    for pairs naming no track, a frame outside the video or masks of different sizes;
    ValidationError (``bad_rle``) for an RLE that does not decode."""
    pairs = _pairs(reference, candidate, pairs)
    objects: dict[int, ObjectScores] = {}
    for reference_id, track in reference.items():
        candidate_id = pairs.get(reference_id, reference_id)
        j_scores, f_scores = _track_scores(track, candidate.get(candidate_id, {}), length, bound_th)
        objects[reference_id] = _object_scores(candidate_id, j_scores, f_scores)
    scored = [scores for scores in objects.values() if scores["frames"]]
    j_mean = _mean([scores["J_mean"] for scores in scored])
    f_mean = _mean([scores["F_mean"] for scores in scored])
    return {"objects": objects, "J_mean": j_mean, "F_mean": f_mean, "JF_mean": _mean_of_two(j_mean, f_mean)}


def _pairs(
    reference: Mapping[int, Track], candidate: Mapping[int, Track], pairs: Mapping[int, int] | None
) -> Mapping[int, int]:
    if pairs is None:
        return {}
    unknown = sorted(set(pairs) - set(reference), key=str)
    if unknown:
        raise ValueError(f"The pairs name reference objects {unknown}, which are not in the reference set.")
    missing = sorted(set(pairs.values()) - set(candidate), key=str)
    if missing:
        raise ValueError(f"The pairs name candidate objects {missing}, which are not in the candidate set.")
    if len(set(pairs.values())) != len(pairs):
        raise ValueError("The pairs give one candidate object to more than one reference object.")
    return pairs


def _track_scores(reference: Track, candidate: Track, length: int, bound_th: float) -> tuple[list[float], list[float]]:
    for frames in (reference, candidate):
        outside = [frame for frame in frames if not (isinstance(frame, int) and 0 <= frame < length)]
        if outside:
            raise ValueError(f"Frames {sorted(outside, key=str)} are outside the video's {length} frames.")
    j_scores: list[float] = []
    f_scores: list[float] = []
    for frame in range(length):
        a = _present(candidate.get(frame))
        b = _present(reference.get(frame))
        if a is None and b is None:
            continue
        if a is None or b is None:
            j_scores.append(0.0)
            f_scores.append(0.0)
            continue
        j_scores.append(region_j(a, b))
        f_scores.append(boundary_f(a, b, bound_th))
    return j_scores, f_scores


def _present(rle: dict | None) -> np.ndarray | None:
    """The decoded mask, or None where the object is absent (no RLE, or an empty mask)."""
    if rle is None:
        return None
    mask = mask_decode(rle)
    return mask if mask.any() else None


def _object_scores(candidate_id: int, j_scores: list[float], f_scores: list[float]) -> ObjectScores:
    j_mean, f_mean = _mean(j_scores), _mean(f_scores)
    return {
        "candidate": candidate_id,
        "J_mean": j_mean,
        "F_mean": f_mean,
        "JF_mean": _mean_of_two(j_mean, f_mean),
        "frames": len(j_scores),
    }


def _mean(values: list[float | None]) -> float | None:
    numbers = [value for value in values if value is not None]
    return sum(numbers) / len(numbers) if numbers else None


def _mean_of_two(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a + b) / 2
