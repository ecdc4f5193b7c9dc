"""DAVIS' J and F on hand-made masks whose values are worked out by hand, and their averaging over
the frames of each object and over objects, with frames where an object is absent from one set or
both."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.morphology import disk as skimage_disk

from annotation.datasets.video_evaluation import (
    boundary_f,
    boundary_map,
    boundary_radius,
    disk,
    evaluate_tracks,
    region_j,
)
from annotation.masks import mask_encode

N = 30


def square(top: int = 5, left: int = 5, size: int = 10, shape: tuple[int, int] = (N, N)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


EMPTY = np.zeros((N, N), dtype=bool)

# --- J ----------------------------------------------------------------------------------------------


def test_it_scores_identical_masks_one_and_disjoint_masks_zero() -> None:
    assert region_j(square(), square()) == 1.0
    assert region_j(square(), square(top=18, left=18)) == 0.0


def test_it_scores_a_square_against_itself_shifted_by_a_pixel() -> None:
    # 10×10 squares overlapping in 10×9 pixels: 90 / (100 + 100 - 90).
    assert region_j(square(), square(left=6)) == pytest.approx(90 / 110)
    assert region_j(square(), square(top=6, left=6)) == pytest.approx(81 / 119)


def test_it_scores_j_of_empty_masks() -> None:
    assert region_j(EMPTY, EMPTY) == 1.0
    assert region_j(square(), EMPTY) == 0.0


# --- F ----------------------------------------------------------------------------------------------


def test_it_draws_the_boundary_half_a_pixel_towards_the_origin() -> None:
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:3, 1:3] = True

    expected = np.zeros((5, 5), dtype=bool)
    expected[0:3, 0:3] = True
    expected[1, 1] = False  # the ring around (1, 1): outside above and left, inside below and right
    assert np.array_equal(boundary_map(mask), expected)


def test_it_draws_no_boundary_for_an_empty_or_a_full_frame() -> None:
    assert not boundary_map(EMPTY).any()
    assert not boundary_map(np.ones((N, N), dtype=bool)).any()


def test_it_matches_boundaries_within_a_disk() -> None:
    for radius in range(9):
        assert np.array_equal(disk(radius), skimage_disk(radius)), radius


def test_it_takes_the_radius_from_the_image_diagonal() -> None:
    assert boundary_radius((480, 854)) == 8  # DAVIS 480p: ceil(0.008 × 979.7)
    assert boundary_radius((N, N)) == 1
    assert boundary_radius((N, N), 3) == 3


@pytest.mark.parametrize("bound_th", [0, -0.1, 1.5])
def test_it_refuses_a_radius_it_cannot_use(bound_th: float) -> None:
    with pytest.raises(ValueError, match="bound_th"):
        boundary_f(square(), square(), bound_th)


def test_it_scores_identical_masks_f_one_and_disjoint_masks_zero() -> None:
    assert boundary_f(square(), square()) == 1.0
    assert boundary_f(square(), square(top=18, left=18)) == 0.0


# The boundary of a 10×10 square is the 40 pixels of an 11×11 ring. Shifted right by one pixel,
# every pixel of either ring is next to the other ring (F = 1 at a radius of one pixel). Shifted
# by two, 22 of the 40 are: 10 + 10 of the top and bottom rows (all but the far corner), none of the
# near side, and 2 of the far side (next to the other ring's top and bottom rows): P = R = 0.55.
# Shifted diagonally by one, every pixel but the outer corner is within a pixel (a diagonal
# neighbour is not, at radius 1): P = R = 39 / 40.
@pytest.mark.parametrize(
    ("moved", "bound_th", "expected"),
    [
        (square(left=6), 1, 1.0),
        (square(left=7), 1, 22 / 40),
        (square(left=7), 2, 1.0),
        (square(left=7), 0.008, 22 / 40),  # a 30×30 image: ceil(0.008 × 42.4) = 1 pixel
        (square(top=6, left=6), 1, 39 / 40),
        (square(left=8), 1, 20 / 40),  # 9 + 9 of the rows, 2 of the far side
    ],
)
def test_it_scores_f_of_a_shifted_square_as_worked_out_by_hand(
    moved: np.ndarray, bound_th: float, expected: float
) -> None:
    assert boundary_f(square(), moved, bound_th) == pytest.approx(expected)
    assert boundary_f(moved, square(), bound_th) == pytest.approx(expected)


def test_it_scores_f_with_precision_and_recall_of_different_sizes() -> None:
    # A 4×4 square's 5×5 ring (16 pixels) in the middle of a 10×10 square's ring (40 pixels), three
    # pixels from it: none match. Then the small square in the big one's top left corner: its ring's
    # top and left sides (5 + 4 pixels) lie on the big ring, and so does a neighbour of the first
    # pixel of its bottom and right sides.
    assert boundary_f(square(size=4, top=8, left=8), square()) == 0.0
    precision = 9 / 16 + 2 / 16  # the two ends of its bottom and right sides touch the big ring
    recall = (5 + 4 + 1 + 1) / 40  # the big ring's pixels on the small ring, and one past each end
    expected = 2 * precision * recall / (precision + recall)
    assert boundary_f(square(size=4), square(), 1) == pytest.approx(expected)


def test_it_draws_no_boundary_along_the_frame_s_bottom_and_right_edges() -> None:
    # A 10×10 square in the bottom right corner of the frame: only its top and left sides have a
    # boundary (11 + 10 pixels). Shifted left by one pixel it also has a right side (10 more),
    # of which only the top pixel is next to the first square's boundary: P = 1, R = 22 / 31.
    corner = square(top=20, left=20)
    moved = square(top=20, left=19)

    assert np.count_nonzero(boundary_map(corner)) == 21
    assert np.count_nonzero(boundary_map(moved)) == 31
    assert boundary_f(corner, moved, 1) == pytest.approx(2 * (22 / 31) / (1 + 22 / 31))


def test_it_scores_f_of_empty_masks() -> None:
    assert boundary_f(EMPTY, EMPTY) == 1.0
    assert boundary_f(square(), EMPTY) == 0.0
    assert boundary_f(EMPTY, square()) == 0.0


def test_it_refuses_masks_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="one size"):
        boundary_f(square(), square(shape=(N, N + 1)))
    with pytest.raises(ValueError, match="one size"):
        region_j(square(), square(shape=(N + 1, N)))


# --- over a video -----------------------------------------------------------------------------------


def rle(mask: np.ndarray) -> dict:
    return mask_encode(mask)


def test_it_averages_over_the_frames_of_each_object_then_over_objects() -> None:
    reference = {
        1: {0: rle(square()), 1: rle(square()), 2: rle(square())},
        2: {1: rle(square(top=18, left=18))},
    }
    candidate = {
        1: {0: rle(square()), 1: rle(square(left=6)), 3: rle(square()), 4: rle(EMPTY)},
        3: {1: rle(square(top=18, left=18))},  # not paired with anything: not scored
    }

    scores = evaluate_tracks(reference, candidate, length=5, pairs=None, bound_th=1)

    # Object 1: frame 0 identical, frame 1 shifted, frame 2 only in the reference, frame 3 only in
    # the candidate (0 for both), frame 4 empty in the candidate and absent in the reference: skipped.
    first = scores["objects"][1]
    assert first["frames"] == 4
    assert first["J_mean"] == pytest.approx((1 + 90 / 110 + 0 + 0) / 4)
    assert first["F_mean"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert first["JF_mean"] == pytest.approx((first["J_mean"] + first["F_mean"]) / 2)
    # Object 2 has no candidate track 2: its one frame scores 0.
    assert scores["objects"][2] == {"candidate": 2, "J_mean": 0.0, "F_mean": 0.0, "JF_mean": 0.0, "frames": 1}
    assert scores["J_mean"] == pytest.approx(first["J_mean"] / 2)
    assert scores["F_mean"] == pytest.approx(0.25)
    assert scores["JF_mean"] == pytest.approx((scores["J_mean"] + 0.25) / 2)


def test_it_pairs_tracks_as_given() -> None:
    reference = {1: {0: rle(square()), 1: rle(square(left=6))}}
    candidate = {5: {0: rle(square()), 1: rle(square(left=6))}, 1: {0: rle(square(top=18, left=18))}}

    paired = evaluate_tracks(reference, candidate, length=2, pairs={1: 5})
    by_id = evaluate_tracks(reference, candidate, length=2, pairs=None)

    assert paired["objects"][1]["candidate"] == 5
    assert (paired["J_mean"], paired["F_mean"], paired["JF_mean"]) == (1.0, 1.0, 1.0)
    assert by_id["objects"][1]["candidate"] == 1
    assert by_id["J_mean"] == 0.0 and by_id["objects"][1]["frames"] == 2


def test_it_leaves_out_an_object_absent_from_every_frame() -> None:
    reference = {1: {0: rle(square())}, 2: {0: rle(EMPTY)}}
    candidate = {1: {0: rle(square())}}

    scores = evaluate_tracks(reference, candidate, length=1)

    assert scores["objects"][2] == {"candidate": 2, "J_mean": None, "F_mean": None, "JF_mean": None, "frames": 0}
    assert (scores["J_mean"], scores["F_mean"], scores["JF_mean"]) == (1.0, 1.0, 1.0)


def test_it_has_no_overall_scores_without_objects() -> None:
    assert evaluate_tracks({}, {}, length=3) == {"objects": {}, "J_mean": None, "F_mean": None, "JF_mean": None}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ({9: 5}, r"reference objects \[9\]"),
        ({1: 9}, r"candidate objects \[9\]"),
        ({1: 5, 2: 5}, "more than one reference object"),
    ],
)
def test_it_refuses_pairs_that_name_nothing_or_share_a_candidate(pairs: dict[int, int], message: str) -> None:
    reference = {1: {0: rle(square())}, 2: {0: rle(square())}}
    candidate = {5: {0: rle(square())}}

    with pytest.raises(ValueError, match=message):
        evaluate_tracks(reference, candidate, length=1, pairs=pairs)


def test_it_refuses_frames_outside_the_video() -> None:
    with pytest.raises(ValueError, match=r"Frames \[3\] are outside the video's 3 frames"):
        evaluate_tracks({1: {3: rle(square())}}, {}, length=3)
