"""COCO import of malformed files: each refused with its clear message, the first problems named,
and nothing imported (no annotation, item, label or stored file), zips failing late included."""

from __future__ import annotations

import copy
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings

from annotation.datasets.coco_reading import MAX_PROBLEMS
from annotation.masks import mask_encode, rle_bbox
from tests.annotation.dataset_import_world import (
    H,
    Target,
    W,
    refused,
    valid_coco,
    zip_of,
)
from tests.conftest import World
from tests.factories import png_bytes


@pytest.fixture
def target(world: World) -> Target:
    return Target(world)


# --- malformed files: refused with a clear message, nothing imported ----------------------------


def _without(path: list[Any], key: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        entry: Any = data
        for step in path:
            entry = entry[step]
        del entry[key]

    return change


def _set(path: list[Any], key: str, value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        entry: Any = data
        for step in path:
            entry = entry[step]
        entry[key] = value

    return change


def _duplicate(key: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        extra = copy.deepcopy(data[key][0])
        if key == "images":
            extra["file_name"] = "folder/other.png"
        data[key].append(extra)

    return change


def _image_size(width: int, height: int) -> Any:
    def change(data: dict[str, Any]) -> None:
        data["images"][0].update(width=width, height=height)
        mask = np.zeros((height, width), dtype=bool)
        mask[5:20, 5:30] = True
        rle = mask_encode(mask)
        data["annotations"][0].update(segmentation=rle, bbox=rle_bbox(rle))

    return change


def _small_counts(data: dict[str, Any]) -> None:
    # The compressed counts of a 10 × 10 mask, claimed for the 48 × 64 image.
    small = np.zeros((10, 10), dtype=bool)
    small[2:5, 2:5] = True
    data["annotations"][0]["segmentation"] = {"size": [H, W], "counts": mask_encode(small)["counts"]}


MALFORMED = {
    "missing_annotations_list": (_without([], "annotations"), "annotations: missing"),
    "images_not_a_list": (_set([], "images", {"id": 1}), "images: must be a list, not an object"),
    "image_without_file_name": (_without(["images", 0], "file_name"), "images[0] (id 1): missing “file_name”"),
    "annotation_without_category": (
        _without(["annotations", 0], "category_id"),
        "annotations[0] (id 1): missing “category_id”",
    ),
    "category_without_name": (_without(["categories", 0], "name"), "categories[0] (id 1): missing “name”"),
    "annotation_without_geometry": (
        lambda data: [data["annotations"][0].pop(key) for key in ("segmentation", "bbox")],
        "annotations[0] (id 1): missing “segmentation” (and no “bbox”",
    ),
    "unknown_image_id": (
        _set(["annotations", 0], "image_id", 9),
        "annotations[0] (id 1): “image_id” 9 is not the id of an image of the file",
    ),
    "unknown_category_id": (
        _set(["annotations", 0], "category_id", 7),
        "annotations[0] (id 1): “category_id” 7 is not the id of a category of the file",
    ),
    "rle_size_not_the_images": (
        lambda data: data["annotations"][0]["segmentation"].update(size=[40, W]),
        "annotations[0] (id 1): the RLE's size [40, 64] is not image 1's [height, width] [48, 64]",
    ),
    "rle_size_not_the_items": (
        _image_size(80, 60),
        "images[0] (id 1): “photo.png” is 80×60 (width × height) in the file but the item “photo.png” it "
        "matches is 64×48: its masks do not fit the item",
    ),
    "counts_that_do_not_decode": (
        _small_counts,
        "annotations[0] (id 1): The RLE's runs cover 100 pixels but its size 48×64 has 3072",
    ),
    "counts_list_that_do_not_decode": (
        lambda data: data["annotations"][0]["segmentation"].update(counts=[100, 20, 5]),
        "annotations[0] (id 1): The RLE's runs cover 125 pixels but its size 48×64 has 3072",
    ),
    "counts_with_foreign_characters": (
        lambda data: data["annotations"][0]["segmentation"].update(counts="a b~"),
        "annotations[0] (id 1): The RLE's counts hold characters that are not part of COCO's encoding.",
    ),
    "polygon_of_two_points": (
        _set(["annotations", 0], "segmentation", [[10, 10, 30, 30]]),
        "annotations[0] (id 1).segmentation[0]: a polygon needs at least three points (six numbers), not 2",
    ),
    "polygon_of_odd_length": (
        _set(["annotations", 0], "segmentation", [[10, 10, 30, 30, 20, 40, 5]]),
        "annotations[0] (id 1).segmentation[0]: a polygon needs x, y pairs: it has an odd count of 7 numbers",
    ),
    "box_outside_the_image": (
        _set(["annotations", 0], "bbox", [50, 40, 30, 20]),
        "annotations[0] (id 1): “bbox” [50, 40, 30, 20] lies outside image 1, which is 64×48 (width × height)",
    ),
    "duplicate_image_ids": (_duplicate("images"), "images[1] (id 1): duplicate id 1 (also images[0])"),
    "duplicate_annotation_ids": (
        _duplicate("annotations"),
        "annotations[1] (id 1): duplicate id 1 (also annotations[0])",
    ),
    "duplicate_category_ids": (_duplicate("categories"), "categories[1] (id 1): duplicate id 1 (also categories[0])"),
    "absurd_size_zero": (
        _set(["images", 0], "width", 0),
        "images[0] (id 1): absurd size 0×48: width and height must be whole numbers of at least 1",
    ),
    "absurd_size_over_the_pixel_limit": (
        lambda data: data["images"][0].update(width=100_000, height=100_000),
        f"images[0] (id 1): absurd size 100000×100000: more than the limit of {settings.MAX_IMAGE_PIXELS} pixels",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_it_refuses_a_malformed_file_and_imports_nothing(target: Target, tmp_path: Path, case: str) -> None:
    change, expected = MALFORMED[case]
    data = valid_coco()
    change(data)
    message = refused(target, tmp_path, data)
    assert message.startswith("“coco.json” was refused and nothing was imported (1 problem):\n- ")
    assert expected in message, message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{not json", "not JSON: Expecting property name enclosed in double quotes at line 1, column 2"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b'{"images": NaN}', "not JSON: NaN is not a JSON number"),
        (b"[]", "not a COCO file: the JSON is a list, not an object with “images”, “annotations” and “categories”"),
        (b'"images"', "not a COCO file: the JSON is a text"),
    ],
    ids=["not_json", "not_text", "not_a_json_number", "a_list", "a_text"],
)
def test_it_refuses_what_is_not_a_coco_object(target: Target, tmp_path: Path, data: bytes, expected: str) -> None:
    assert expected in refused(target, tmp_path, data)


def test_it_refuses_a_file_over_the_size_cap(target: Target, tmp_path: Path, settings: Any) -> None:
    settings.DATASET_IMPORT_MAX_JSON_BYTES = 100
    message = refused(target, tmp_path, valid_coco())
    assert "the file is larger than the limit for a COCO file, 100 bytes" in message


def test_it_names_the_first_problems_and_counts_the_rest(target: Target, tmp_path: Path) -> None:
    data = valid_coco()
    for index in range(2, 32):
        data["annotations"].append({**data["annotations"][0], "id": index, "image_id": 100 + index})
    message = refused(target, tmp_path, data)
    assert f"(30 problems, the first {MAX_PROBLEMS} listed):" in message
    lines = message.splitlines()[1:]
    assert len(lines) == MAX_PROBLEMS
    assert lines[0] == "- annotations[1] (id 2): “image_id” 102 is not the id of an image of the file"


def test_it_leaves_no_item_nor_file_behind_when_a_zip_fails_late(target: Target, tmp_path: Path) -> None:
    # The first image is made into an item before the second is found not to be the size the file says.
    coco = valid_coco()
    coco["images"] = [
        {"id": 1, "file_name": "a.png", "width": W, "height": H},
        {"id": 2, "file_name": "b.png", "width": 50, "height": 50},
    ]
    path = zip_of(tmp_path, coco, {"a.png": png_bytes(W, H), "b.png": png_bytes(40, 30)})
    message = refused(target, tmp_path, path)
    assert "images[1] (id 2): “b.png” is 50×50 (width × height) in the file but its image in the zip is 40×30" in (
        message
    )


def test_it_refuses_a_zip_without_a_coco_file_or_with_a_damaged_image(target: Target, tmp_path: Path) -> None:
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.png", png_bytes())
    assert "the zip holds no COCO file (a .json file)" in refused(target, tmp_path, path)

    coco = valid_coco()
    coco["images"][0]["file_name"] = "a.png"
    damaged = zip_of(tmp_path, coco, {"a.png": b"\x89PNG\r\n\x1a\nnot really"}, name="damaged.zip")
    assert "images[0] (id 1): its file “images/a.png”: " in refused(target, tmp_path, damaged)
