"""The mask module against pycocotools: encode / decode round trips of awkward masks, validation of
RLE from outside (each way it can be wrong, including the ones pycocotools itself would misread),
bbox / area / IoU, and polygon and box rasterisation equal to pycocotools' frPyObjects."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from pycocotools import mask as coco

from annotation.masks import (
    box_to_rle,
    mask_decode,
    mask_encode,
    polygon_to_rle,
    rle_area,
    rle_bbox,
    rle_iou,
    rle_validate,
)


def awkward_masks() -> dict[str, np.ndarray]:
    masks: dict[str, np.ndarray] = {}
    masks["empty"] = np.zeros((48, 64), dtype=bool)
    masks["full"] = np.ones((48, 64), dtype=bool)
    for name, (y, x) in {"top-left": (0, 0), "bottom-right": (46, 62), "middle": (20, 31)}.items():
        one = np.zeros((47, 63), dtype=bool)
        one[y, x] = True
        masks[f"one pixel {name}"] = one
    masks["1x1 set"] = np.ones((1, 1), dtype=bool)
    masks["1x1 clear"] = np.zeros((1, 1), dtype=bool)
    row = np.zeros((1, 7), dtype=bool)
    row[0, ::2] = True
    masks["one row"] = row
    masks["one column"] = row.T.copy()
    odd = np.zeros((13, 17), dtype=bool)
    odd[3:11, 5:16] = True
    masks["odd size"] = odd
    ring = np.zeros((31, 29), dtype=bool)
    ring[4:27, 3:26] = True
    ring[10:20, 9:19] = False  # a hole
    ring[14:16, 13:15] = True  # an island in the hole
    masks["holes"] = ring
    parts = np.zeros((40, 50), dtype=bool)
    parts[2:9, 3:12] = True
    parts[20:38, 30:31] = True
    parts[30:40, 0:4] = True  # touches the bottom edge
    parts[0:1, 45:50] = True  # touches the top and right edges
    masks["several parts"] = parts
    masks["checkerboard"] = (np.indices((9, 11)).sum(axis=0) % 2).astype(bool)
    # Long runs: deltas of every size, positive and negative, in the six-bit encoding.
    big = np.zeros((3000, 4000), dtype=bool)
    big[1000:2000, 5:3000] = True
    big[0:7, 3999] = True
    masks["large"] = big
    return masks


AWKWARD = awkward_masks()


def coco_encode(mask: np.ndarray) -> dict:
    return coco.encode(np.asfortranarray(mask.astype(np.uint8)))


@pytest.mark.parametrize("name", list(AWKWARD))
def test_it_encodes_exactly_as_pycocotools(name: str) -> None:
    mask = AWKWARD[name]
    ours = mask_encode(mask)
    theirs = coco_encode(mask)
    assert ours == {"size": [int(s) for s in theirs["size"]], "counts": theirs["counts"].decode("ascii")}
    assert isinstance(ours["counts"], str)


@pytest.mark.parametrize("name", list(AWKWARD))
def test_it_decodes_pycocotools_output_and_round_trips(name: str) -> None:
    mask = AWKWARD[name]
    decoded = mask_decode(coco_encode(mask))
    assert decoded.dtype == bool and decoded.shape == mask.shape
    assert np.array_equal(decoded, mask)
    assert np.array_equal(mask_decode(mask_encode(mask)), mask)


def test_it_round_trips_random_masks() -> None:
    rng = np.random.default_rng(6)
    for _ in range(200):
        height, width = (int(n) for n in rng.integers(1, 40, size=2))
        mask = rng.random((height, width)) < rng.random()
        rle = mask_encode(mask)
        assert rle["counts"] == coco_encode(mask)["counts"].decode("ascii")
        assert np.array_equal(mask_decode(rle), mask)
        if mask.any():
            assert rle_validate(rle, height=height, width=width) == rle


def test_it_encodes_any_dtype_and_refuses_non_2d_arrays() -> None:
    values = np.array([[0, 3], [255, 0]], dtype=np.uint8)
    assert np.array_equal(mask_decode(mask_encode(values)), values != 0)
    assert mask_encode(values.astype(np.float32)) == mask_encode(values)
    for shape in [(3,), (2, 2, 1), (0, 4)]:
        with pytest.raises(ValueError):
            mask_encode(np.zeros(shape, dtype=bool))


# --- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [name for name, mask in AWKWARD.items() if mask.any()])
def test_it_validates_pycocotools_rle_unchanged(name: str) -> None:
    mask = AWKWARD[name]
    rle = coco_encode(mask)
    expected = mask_encode(mask)
    assert rle_validate(rle, height=mask.shape[0], width=mask.shape[1]) == expected
    as_json = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
    assert rle_validate(as_json, height=mask.shape[0], width=mask.shape[1]) == expected


def runs_of(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed counts: run lengths down the columns, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] else runs


@pytest.mark.parametrize("name", [name for name, mask in AWKWARD.items() if mask.any()])
def test_it_accepts_uncompressed_counts_and_stores_them_compressed(name: str) -> None:
    mask = AWKWARD[name]
    height, width = mask.shape
    validated = rle_validate({"size": [height, width], "counts": runs_of(mask)}, height=height, width=width)
    assert validated == mask_encode(mask)


def test_it_merges_empty_runs_into_the_canonical_form() -> None:
    # 2 clear, 3 set, 0 clear, 7 set: the same mask as 2 clear then 10 set.
    validated = rle_validate({"size": [3, 4], "counts": [2, 3, 0, 7]}, height=3, width=4)
    mask = np.ones((3, 4), dtype=bool)
    mask[0:2, 0] = False  # the first two pixels down the first column
    assert validated == mask_encode(mask)
    assert np.array_equal(mask_decode({"size": [3, 4], "counts": [2, 3, 0, 7]}), mask)
    # The compressed form of the same non-canonical runs is normalised too.
    non_canonical = coco.frPyObjects({"size": [3, 4], "counts": [2, 3, 0, 7]}, 3, 4)
    assert rle_validate(non_canonical, height=3, width=4) == validated


def error_of(rle: Any, height: int = 3, width: int = 4) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        rle_validate(rle, height=height, width=width)
    return caught.value


@pytest.mark.parametrize(
    ("rle", "code", "words"),
    [
        (None, "bad_rle", "RLE object"),
        ("0<", "bad_rle", "RLE object"),
        ([3, 4], "bad_rle", "RLE object"),
        ({}, "bad_rle", "no 'size' or 'counts'"),
        ({"size": [3, 4]}, "bad_rle", "no 'counts'"),
        ({"counts": "0<"}, "bad_rle", "no 'size'"),
        ({"size": [3], "counts": "0<"}, "bad_rle", "[height, width]"),
        ({"size": "3x4", "counts": "0<"}, "bad_rle", "[height, width]"),
        ({"size": [3.0, 4], "counts": "0<"}, "bad_rle", "[height, width]"),
        ({"size": [True, 4], "counts": "0<"}, "bad_rle", "[height, width]"),
        ({"size": [0, 4], "counts": "0<"}, "bad_rle", "[height, width]"),
        ({"size": [3, 4], "counts": 12}, "bad_rle", "compressed string"),
        ({"size": [3, 4], "counts": None}, "bad_rle", "compressed string"),
        ({"size": [3, 4], "counts": ""}, "bad_rle", "counts are empty"),
        ({"size": [3, 4], "counts": []}, "bad_rle", "counts are empty"),
        ({"size": [3, 4], "counts": "P"}, "bad_rle", "middle of a number"),  # a continued number, then nothing
        ({"size": [3, 4], "counts": "0`"}, "bad_rle", "middle of a number"),
        ({"size": [3, 4], "counts": "0 <"}, "bad_rle", "not part of COCO's encoding"),
        ({"size": [3, 4], "counts": "0<~"}, "bad_rle", "not part of COCO's encoding"),
        ({"size": [3, 4], "counts": "0<é"}, "bad_rle", "not part of COCO's encoding"),
        ({"size": [3, 4], "counts": "0<\x00"}, "bad_rle", "not part of COCO's encoding"),
        ({"size": [3, 4], "counts": "ooooooo1"}, "bad_rle", "too large"),
        ({"size": [3, 4], "counts": "9999"}, "bad_rle", "cover 45 pixels"),  # too many pixels
        ({"size": [3, 4], "counts": "11"}, "bad_rle", "cover 2 pixels"),  # too few
        ({"size": [3, 4], "counts": "212K"}, "bad_rle", "negative run"),  # 2, 1, 2, then 1 - 5
        ({"size": [3, 4], "counts": [2, -1, 11]}, "bad_rle", "negative run"),
        ({"size": [3, 4], "counts": [2, 3.5, 6.5]}, "bad_rle", "whole numbers"),
        ({"size": [3, 4], "counts": [2, True, 9]}, "bad_rle", "whole numbers"),
        ({"size": [3, 4], "counts": [0] * 20}, "bad_rle", "more runs"),
        ({"size": [3, 4], "counts": [2, 2**70, 10]}, "bad_rle", "more pixels than its size has"),
        ({"size": [3, 4], "counts": [2, 2**40, 10]}, "bad_rle", "cover 1099511627788 pixels"),
        ({"size": [4, 3], "counts": "0<"}, "wrong_size", "4×3 (height × width) but the item is 3×4"),
        ({"size": [3, 5], "counts": "0?"}, "wrong_size", "3×5"),
        ({"size": [3, 4], "counts": "<"}, "empty", "no pixel set"),
        ({"size": [3, 4], "counts": [12]}, "empty", "no pixel set"),
        ({"size": [3, 4], "counts": [5, 0, 7]}, "empty", "no pixel set"),
    ],
)
def test_it_refuses_rle_that_is_not_a_mask_of_the_item(rle: Any, code: str, words: str) -> None:
    error = error_of(rle)
    assert error.code == code
    assert words in " ".join(error.messages)


def test_it_refuses_what_pycocotools_itself_would_misread() -> None:
    # pycocotools' area and bbox read these without complaint and answer nonsense; here they are
    # refused before pycocotools sees them.
    for counts in ("9999", "0`", "P"):
        rle = {"size": [3, 4], "counts": counts}
        coco.area(rle)  # no error from pycocotools
        for read in (rle_area, rle_bbox, mask_decode):
            with pytest.raises(ValidationError):
                read(rle)


def test_it_accepts_bytes_counts_from_pycocotools_callers() -> None:
    mask = AWKWARD["holes"]
    rle = coco_encode(mask)
    assert isinstance(rle["counts"], bytes)
    assert np.array_equal(mask_decode(rle), mask)
    assert rle_area(rle) == int(mask.sum())


# --- measures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(AWKWARD))
def test_it_measures_bbox_and_area_as_pycocotools(name: str) -> None:
    mask = AWKWARD[name]
    rle = mask_encode(mask)
    theirs = coco_encode(mask)
    assert rle_area(rle) == int(coco.area(theirs)) == int(mask.sum())
    assert rle_bbox(rle) == [float(v) for v in coco.toBbox(theirs)]
    assert all(isinstance(v, float) for v in rle_bbox(rle))


def test_it_gives_a_bbox_of_the_pixels_set() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:9, 10:25] = True
    assert rle_bbox(mask_encode(mask)) == [10.0, 5.0, 15.0, 4.0]
    assert rle_area(mask_encode(mask)) == 60


def test_it_computes_iou_as_pycocotools() -> None:
    a = np.zeros((20, 30), dtype=bool)
    a[0:10, 0:10] = True
    b = np.zeros((20, 30), dtype=bool)
    b[5:15, 5:15] = True
    expected = float(coco.iou([coco_encode(a)], [coco_encode(b)], [0])[0][0])
    assert rle_iou(mask_encode(a), mask_encode(b)) == pytest.approx(expected)
    assert expected == pytest.approx(25 / 175)
    assert rle_iou(mask_encode(a), mask_encode(a)) == 1.0
    assert rle_iou(mask_encode(a), mask_encode(np.zeros((20, 30), dtype=bool))) == 0.0
    with pytest.raises(ValueError):
        rle_iou(mask_encode(a), mask_encode(np.ones((30, 20), dtype=bool)))


# --- polygons and boxes ------------------------------------------------------------------------------


def coco_polygon(points: list[list[float]], height: int, width: int) -> dict:
    flat = [coordinate for point in points for coordinate in point]
    merged = coco.merge(coco.frPyObjects([flat], height, width))
    return {"size": [int(s) for s in merged["size"]], "counts": merged["counts"].decode("ascii")}


@pytest.mark.parametrize(
    ("points", "height", "width"),
    [
        ([[1, 1], [10, 1], [5, 8]], 12, 12),  # a triangle
        ([[2.5, 3.25], [30.75, 4.5], [28.1, 20.9], [3.3, 19.6]], 24, 33),  # fractional vertices
        ([[0, 0], [20, 0], [20, 20], [10, 5], [0, 20]], 21, 21),  # concave
        ([[-5, -5], [50, 10], [10, 60]], 48, 64),  # reaching past the edges
        ([[0, 0], [63, 0], [63, 47], [0, 47]], 48, 64),  # the whole image
        ([[3, 3], [3, 3], [3, 3]], 10, 10),  # degenerate: a single point
    ],
)
def test_it_rasterises_polygons_as_pycocotools(points: list, height: int, width: int) -> None:
    assert polygon_to_rle(points, height=height, width=width) == coco_polygon(points, height, width)


def test_it_rasterises_a_many_sided_polygon_as_pycocotools() -> None:
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    radius = 20 + 8 * np.sin(7 * angles)
    points = np.stack([40 + radius * np.cos(angles), 35 + radius * np.sin(angles)], axis=1).tolist()
    rle = polygon_to_rle(points, height=70, width=80)
    assert rle == coco_polygon(points, 70, 80)
    assert rle_area(rle) > 0


@pytest.mark.parametrize(
    ("box", "height", "width"),
    [
        ([2, 3, 10, 7], 12, 12),
        ([10, 7, 2, 3], 12, 12),  # dragged from the bottom-right corner
        ([10, 3, 2, 7], 12, 12),  # and from the top-right one
        ([0.5, 0.5, 5.25, 9.75], 12, 12),
        ([-4, -4, 70, 60], 48, 64),  # larger than the image
        ([5, 5, 5, 9], 12, 12),  # no width
    ],
)
def test_it_rasterises_boxes_as_pycocotools(box: list, height: int, width: int) -> None:
    x0, y0, x1, y1 = box
    coco_box = np.array([[min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)]], dtype=np.float64)
    [theirs] = coco.frPyObjects(coco_box, height, width)
    assert box_to_rle(box, height=height, width=width) == {
        "size": [height, width],
        "counts": theirs["counts"].decode("ascii"),
    }


def test_it_rasterises_a_box_as_the_polygon_of_its_corners() -> None:
    box = box_to_rle([4, 2, 15, 9], height=12, width=20)
    assert box == polygon_to_rle([[4, 2], [4, 9], [15, 9], [15, 2]], height=12, width=20)
    assert rle_bbox(box)[2:] == [11.0, 7.0]


@pytest.mark.parametrize(
    "points",
    [
        [],
        [[1, 1], [5, 5]],  # two vertices: pycocotools would read four numbers as a box
        [[1, 1], [5, 5], [9]],
        [[1, 1], [5, 5], [9, float("nan")]],
        [[1, 1], [5, 5], [9, float("inf")]],
        [[1, 1], [5, 5], ["9", 1]],
        [[1, 1], [5, 5], [1e9, 1]],  # far outside: the scan converter would walk a billion pixels
        "1,1 5,5 9,1",
    ],
)
def test_it_refuses_polygons_that_are_not_polygons(points: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        polygon_to_rle(points, height=12, width=12)
    assert caught.value.code == "bad_geometry"


@pytest.mark.parametrize("box", [[], [1, 2, 3], [1, 2, 3, None], [0, 0, 1e12, 5], [1, 2, 3, float("nan")]])
def test_it_refuses_boxes_that_are_not_boxes(box: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        box_to_rle(box, height=12, width=12)
    assert caught.value.code == "bad_geometry"
