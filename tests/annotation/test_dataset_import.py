"""COCO import: each malformed file refused with its clear message and nothing imported; the round
trip (export with images → import into a fresh project → export again gives the same masks and
answers); polygons, uncompressed RLE and boxes rasterised as pycocotools does; labels, answers and
items matched by name; the job (report, retries, the stored upload), the REST endpoint, the project
page's form and ``manage.py import_dataset``."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from annotation.datasets.coco_import import dataset_import_run
from annotation.datasets.coco_reading import MAX_PROBLEMS, ImportRefused
from annotation.datasets.import_job import dataset_import_start
from annotation.masks import mask_decode, mask_encode, rle_area, rle_bbox
from annotation.models import Annotation, Label, MediaItem, Project, Question
from platform_core.jobs.core import run_job
from platform_core.jobs.services import job_retry
from platform_core.models import Job
from platform_core.tenancy import resolve_tenant
from tests.annotation.dataset_project import ellipse, make_dataset_project, run_export
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import ProjectFactory, make_image, png_bytes

H, W = 48, 64


class Target:
    """A project to import into: a mask label “cat” with a question, and two images."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.project = ProjectFactory(organization=world.demo.org, name="Target")
        self.cat = Label.objects.create(project=self.project, name="cat", color="#ff8800")
        self.pose = Question.objects.create(
            project=self.project, label=self.cat, text="Pose", choices=["sitting", "lying"]
        )
        self.photo = make_image(self.project, name="photo.png", width=W, height=H)
        self.other = make_image(self.project, name="folder/other.png", width=40, height=30)
        self.tenant = resolve_tenant(world.manager, "demo-lab")

    def annotations(self) -> Any:
        return Annotation.objects.filter(media__project=self.project)

    def items(self) -> Any:
        return MediaItem.objects.filter(project=self.project)


@pytest.fixture
def target(world: World) -> Target:
    return Target(world)


def blob() -> np.ndarray:
    return ellipse(H, W, (30, 20), (10, 8))


def valid_coco() -> dict[str, Any]:
    rle = mask_encode(blob())
    return {
        "images": [{"id": 1, "file_name": "photo.png", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": rle,
                "area": rle_area(rle),
                "bbox": rle_bbox(rle),
                "iscrowd": 0,
            }
        ],
    }


def write(tmp_path: Path, data: dict[str, Any] | bytes, name: str = "coco.json") -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def run(target: Target, path: Path, **params: Any) -> dict[str, Any]:
    source = "zip" if path.suffix == ".zip" else "json"
    return dataset_import_run(
        tenant=target.tenant,
        project=target.project,
        params={"source": source, "path": str(path), **params},
        actor=target.world.manager,
    )


def stored_files(project: Project) -> set[str]:
    root = Path(default_storage.path(f"org-{project.organization_id}/project-{project.pk}"))
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def refused(target: Target, tmp_path: Path, data: dict[str, Any] | bytes, **params: Any) -> str:
    """The refusal's message; and nothing was imported: no annotation, no item, no label, no file."""
    items = set(target.items().values_list("pk", flat=True))
    labels = target.project.labels.count()
    files = stored_files(target.project)
    path = write(tmp_path, data) if not isinstance(data, Path) else data
    with pytest.raises(ImportRefused) as info:
        run(target, path, **params)
    assert target.annotations().count() == 0
    assert set(target.items().values_list("pk", flat=True)) == items
    assert target.project.labels.count() == labels
    assert stored_files(target.project) == files
    return info.value.message


# --- a good file, as the baseline of the malformed ones ----------------------------------------


def test_it_imports_a_good_file_as_pre_annotations(target: Target, tmp_path: Path) -> None:
    report = run(target, write(tmp_path, valid_coco()))
    annotation = target.annotations().get()
    assert (annotation.media, annotation.label, annotation.proposed) == (target.photo, target.cat, True)
    assert annotation.source == Annotation.Source.IMPORT
    assert annotation.source_detail == {"file": "coco.json", "coco_id": 1}
    assert annotation.author == target.world.manager
    assert np.array_equal(mask_decode(annotation.rle), blob())
    assert (report["matched_items"], report["created_items"], report["annotations"]) == (1, 0, 1)
    assert report["proposed"] is True and report["skipped_annotations_count"] == 0


def test_it_stacks_the_objects_on_top_in_the_files_order(target: Target, tmp_path: Path) -> None:
    existing = Annotation.objects.create(
        media=target.photo, label=target.cat, rle=mask_encode(blob()), bbox=[0, 0, 1, 1], area=1, z_order=5
    )
    data = valid_coco()
    data["annotations"].append({**data["annotations"][0], "id": 7})
    data["annotations"].append({**data["annotations"][0], "id": 3})
    run(target, write(tmp_path, data))
    stack = list(target.annotations().order_by("z_order").values_list("pk", "z_order", "source_detail__coco_id"))
    assert stack == [(existing.pk, 5, None)] + [
        (stack[i][0], 5 + i, coco_id) for i, coco_id in ((1, 1), (2, 7), (3, 3))
    ]


def test_it_imports_as_accepted_objects_when_asked(target: Target, tmp_path: Path) -> None:
    report = run(target, write(tmp_path, valid_coco()), proposed=False)
    assert report["proposed"] is False and target.annotations().get().proposed is False


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


def zip_of(tmp_path: Path, coco: dict[str, Any], files: dict[str, bytes], name: str = "dataset.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("annotations/instances.json", json.dumps(coco))
        for file_name, data in files.items():
            archive.writestr(f"images/{file_name}", data)
    return path


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


# --- the round trip ---------------------------------------------------------------------------------


def load(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def by_file(coco: COCO) -> dict[str, dict[str, Any]]:
    """Per file name: the image's attributes and its objects (category name, mask, attributes), bottom first."""
    names = {cat["id"]: cat["name"] for cat in coco.dataset["categories"]}
    files = {}
    for image in coco.dataset["images"]:
        objects = [
            (names[ann["category_id"]], coco.annToMask(ann).astype(bool), ann["attributes"])
            for ann in coco.dataset["annotations"]
            if ann["image_id"] == image["id"]
        ]
        files[image["file_name"]] = {"size": (image["width"], image["height"]), "attributes": image["attributes"]}
        files[image["file_name"]]["objects"] = objects
    return files


def test_it_round_trips_an_export_with_images_into_a_fresh_project(world: World, tmp_path: Path) -> None:
    dataset = make_dataset_project(world)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    _, first = run_export(dataset.project, tmp_path / "first", include_images=True)

    fresh = ProjectFactory(organization=world.demo.org, name="Fresh")
    tenant = resolve_tenant(world.manager, "demo-lab")
    report = dataset_import_run(
        tenant=tenant,
        project=fresh,
        params={"source": "zip", "path": str(first), "create_labels": True, "proposed": False},
        actor=world.manager,
    )
    assert (report["created_items"], report["matched_items"], report["annotations"]) == (3, 0, 7)
    assert report["labels_created"] == ["cat", "sign", "scene"]
    assert report["unmapped_answers_count"] == 0 and report["skipped_annotations_count"] == 0
    # The labels come back with their colours and questions.
    cat = fresh.labels.get(name="cat")
    assert (cat.color, list(cat.questions.values_list("text", "choices"))) == (
        "#ff8800",
        [("Pose", ["sitting", "lying"])],
    )
    assert fresh.labels.get(name="scene").kind == Label.Kind.CLASSIFICATION
    assert (cat.kind, fresh.labels.get(name="sign").kind) == (Label.Kind.MASK, Label.Kind.BOX)

    _, second = run_export(fresh, tmp_path / "second")
    with zipfile.ZipFile(first) as archive:
        archive.extract("annotations/instances.json", tmp_path / "first")
    before = by_file(load(tmp_path / "first" / "annotations" / "instances.json"))
    after = by_file(load(second))
    assert set(before) == set(after) and len(before) == 3
    for name, image in before.items():
        again = after[name]
        assert again["size"] == image["size"]
        assert again["attributes"] == image["attributes"]
        assert len(again["objects"]) == len(image["objects"])
        for (label, mask, answers), (label_again, mask_again, answers_again) in zip(
            image["objects"], again["objects"], strict=True
        ):
            assert (label_again, answers_again) == (label, answers)
            assert np.array_equal(mask_again, mask)
    # Answers were there to compare: objects' and items'.
    assert any(obj[2] for image in before.values() for obj in image["objects"])
    assert any(image["attributes"] for image in before.values())


# --- geometry: as pycocotools reads it ------------------------------------------------------------


def test_it_imports_polygons_as_pycocotools_rasterises_them(target: Target, tmp_path: Path) -> None:
    polygons = [[5.5, 4, 30, 8.25, 18, 40], [40, 10, 60, 12, 58, 30, 44, 28]]
    data = valid_coco()
    data["annotations"][0].update(segmentation=polygons, bbox=[5, 4, 55, 36])
    run(target, write(tmp_path, data))
    expected = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, H, W))).astype(bool)
    assert expected.any()
    assert np.array_equal(mask_decode(target.annotations().get().rle), expected)


def test_it_imports_uncompressed_rle(target: Target, tmp_path: Path) -> None:
    mask = blob()
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate(([0], flat, [1 - flat[-1]])))) if flat.size else []
    counts = np.diff(np.concatenate(([0], changes))).tolist()
    assert sum(counts) == H * W
    data = valid_coco()
    data["annotations"][0].update(segmentation={"size": [H, W], "counts": counts}, iscrowd=1)
    run(target, write(tmp_path, data))
    stored = target.annotations().get().rle
    assert stored == mask_encode(mask)  # the canonical compressed form


def test_it_imports_a_box_given_by_its_bbox_alone(target: Target, tmp_path: Path) -> None:
    data = valid_coco()
    data["annotations"][0].pop("segmentation")
    data["annotations"][0]["bbox"] = [10, 5, 20, 15]
    run(target, write(tmp_path, data))
    annotation = target.annotations().get()
    assert annotation.bbox == [10.0, 5.0, 20.0, 15.0] and annotation.area == 300
    assert annotation.drawn == {"box": [10.0, 5.0, 30.0, 20.0]}


def test_it_skips_empty_masks_and_reports_them(target: Target, tmp_path: Path) -> None:
    data = valid_coco()
    data["annotations"][0]["segmentation"] = mask_encode(np.zeros((H, W), dtype=bool))
    data["annotations"][0].pop("bbox")
    report = run(target, write(tmp_path, data))
    assert report["annotations"] == 0 and target.annotations().count() == 0
    assert report["skipped_annotations"] == [
        {"annotation": 1, "image": 1, "reason": "its mask is empty: no pixel is set"}
    ]


# --- labels, answers, items -----------------------------------------------------------------------


def test_it_maps_categories_by_name_and_skips_unknown_ones_unless_asked(target: Target, tmp_path: Path) -> None:
    data = valid_coco()
    data["categories"] = [
        {"id": 1, "name": "CAT"},
        {"id": 2, "name": "dog", "color": "#00AA11", "questions": [{"text": "Breed", "choices": ["a", "b"]}]},
    ]
    data["annotations"].append({**data["annotations"][0], "id": 2, "category_id": 2})
    report = run(target, write(tmp_path, data))
    assert report["unknown_categories"] == ["dog"] and report["annotations"] == 1
    assert target.annotations().get().label == target.cat
    assert report["skipped_annotations"] == [
        {
            "annotation": 2,
            "image": 1,
            "reason": "category “dog” has no label in the project (create labels to import it)",
        }
    ]
    assert not target.project.labels.filter(name="dog").exists()

    target.annotations().delete()
    report = run(target, write(tmp_path, data), create_labels=True)
    dog = target.project.labels.get(name="dog")
    assert (dog.color, dog.kind, report["labels_created"], report["questions_created"]) == (
        "#00aa11",
        Label.Kind.MASK,
        ["dog"],
        1,
    )
    assert list(dog.questions.values_list("text", "choices")) == [("Breed", ["a", "b"])]
    assert sorted(target.annotations().values_list("label__name", flat=True)) == ["cat", "dog"]


def test_it_maps_answers_by_question_text_and_reports_the_rest(target: Target, tmp_path: Path) -> None:
    light = Question.objects.create(project=target.project, text="Light", choices=["day", "night"])
    target.photo.answers = {}
    data = valid_coco()
    data["annotations"][0]["attributes"] = {"pose": "Lying", "Colour": "red", "Pose ": "standing"}
    data["images"][0]["attributes"] = {"Light": "night", "Weather": "rain"}
    report = run(target, write(tmp_path, data))
    assert target.annotations().get().answers == {str(target.pose.pk): "lying"}
    target.photo.refresh_from_db()
    assert target.photo.answers == {str(light.pk): "night"}
    assert report["item_answers"] == 1
    assert report["unmapped_answers"] == [
        {
            "where": "annotation 1",
            "question": "Colour",
            "answer": "red",
            "reason": "the label “cat” has no question of this text",
        },
        {
            "where": "annotation 1",
            "question": "Pose ",
            "answer": "standing",
            "reason": "the label “cat” has no question of this text",
        },
        {
            "where": "image 1",
            "question": "Weather",
            "answer": "rain",
            "reason": "the project has no question of this text",
        },
    ]


def test_it_keeps_the_answers_a_matched_item_has(target: Target, tmp_path: Path) -> None:
    light = Question.objects.create(project=target.project, text="Light", choices=["day", "night"])
    MediaItem.objects.filter(pk=target.photo.pk).update(answers={str(light.pk): "day"})
    data = valid_coco()
    data["images"][0]["attributes"] = {"Light": "night"}
    report = run(target, write(tmp_path, data))
    target.photo.refresh_from_db()
    assert target.photo.answers == {str(light.pk): "day"} and report["item_answers"] == 0
    assert report["unmapped_answers"][0]["reason"] == "the item keeps its own answer “day”"


def test_it_matches_items_by_name_folders_and_all(target: Target, tmp_path: Path) -> None:
    make_image(target.project, name="a/twice.png")
    make_image(target.project, name="b/twice.png")
    data = valid_coco()
    data["images"] = [
        {"id": 1, "file_name": "train/2024/photo.png", "width": W, "height": H},  # a folder: its last part
        {"id": 2, "file_name": "other.png", "width": 40, "height": 30},  # the item's last part
        {"id": 3, "file_name": "a/twice.png", "width": W, "height": H},  # exactly one item by its full name
        {"id": 4, "file_name": "x/twice.png", "width": W, "height": H},  # two items end so: ambiguous
        {"id": 5, "file_name": "missing.png", "width": W, "height": H},
    ]
    report = run(target, write(tmp_path, data))
    assert report["matched_items"] == 3
    assert target.annotations().get().media == target.photo
    assert report["skipped_images"] == [
        {
            "image": 4,
            "file_name": "x/twice.png",
            "reason": "2 items of the project have this name: rename them, or import a zip",
        },
        {"image": 5, "file_name": "missing.png", "reason": "no item of the project has this name"},
    ]


def test_it_puts_a_classification_category_aside(target: Target, tmp_path: Path) -> None:
    Label.objects.create(project=target.project, name="scene", kind=Label.Kind.CLASSIFICATION)
    data = valid_coco()
    data["categories"][0]["name"] = "Scene"
    report = run(target, write(tmp_path, data), create_labels=True)
    assert report["annotations"] == 0 and report["labels_created"] == []
    assert report["skipped_annotations"][0]["reason"] == (
        "“Scene” is a classification label here: objects need a mask or box label"
    )


# --- the job ---------------------------------------------------------------------------------------


def upload(data: dict[str, Any] | bytes, name: str = "coco.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data if isinstance(data, bytes) else json.dumps(data).encode())


def start(target: Target, capture: Any, data: Any, name: str = "coco.json", **options: Any) -> Job:
    with capture(execute=True):
        job = dataset_import_start(
            tenant=target.tenant,
            project=target.project,
            actor=target.world.manager,
            uploaded_file=upload(data, name),
            **options,
        )
    return job


def test_it_runs_as_a_job_with_its_report_and_forgets_the_upload(
    target: Target, django_capture_on_commit_callbacks: Any
) -> None:
    job = start(target, django_capture_on_commit_callbacks, valid_coco(), create_labels=True)
    assert job.kind == "import_dataset" and job.state == Job.State.QUEUED
    stored = job.params["storage_name"]
    assert stored.startswith(f"org-{target.project.organization_id}/project-{target.project.pk}/imports/")
    assert default_storage.exists(stored)
    assert {k: v for k, v in job.params.items() if k != "storage_name"} == {
        "source": "upload_json",
        "label": "coco.json",
        "create_labels": True,
        "proposed": True,
    }
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    assert job.report["annotations"] == 1 and job.report["matched_items"] == 1
    assert job.params["committed"] == job.report
    assert not default_storage.exists(stored)
    assert target.annotations().count() == 1

    # A retry of a job whose run committed imports nothing twice.
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED)
    job_retry(job=Job.objects.get(pk=job.pk), actor=target.world.manager)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.report["annotations"] == 1
    assert target.annotations().count() == 1


def test_it_fails_the_job_with_the_problems_of_a_malformed_file(
    target: Target, django_capture_on_commit_callbacks: Any
) -> None:
    data = valid_coco()
    data["annotations"][0]["image_id"] = 5
    job = start(target, django_capture_on_commit_callbacks, data)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert job.message.startswith("“coco.json” was refused and nothing was imported (1 problem):")
    assert "annotations[0] (id 1): “image_id” 5 is not the id of an image of the file" in job.message
    assert target.annotations().count() == 0 and not default_storage.exists(job.params["storage_name"])


def test_it_imports_an_uploaded_zip_creating_the_items(
    target: Target, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    coco = valid_coco()
    coco["images"][0]["file_name"] = "new.png"
    path = zip_of(tmp_path, coco, {"new.png": png_bytes(W, H)})
    job = start(target, django_capture_on_commit_callbacks, path.read_bytes(), name="dataset.zip")
    assert job.params["source"] == "upload" and job.params["storage_name"].endswith(".zip")
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    item = target.items().get(original_name="new.png")
    assert (item.width, item.height, item.uploaded_by) == (W, H, target.world.manager)
    assert target.annotations().get().media == item and job.report["created_items"] == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "empty"), (b"hello", "not_coco"), (b"PK\x03\x04broken", "not_coco")],
    ids=["empty", "text", "broken_zip"],
)
def test_it_refuses_an_upload_that_is_neither_json_nor_zip(target: Target, data: bytes, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        dataset_import_start(
            tenant=target.tenant, project=target.project, actor=target.world.manager, uploaded_file=upload(data)
        )
    assert info.value.code == code
    assert not Job.objects.filter(kind="import_dataset").exists()


def test_it_refuses_a_json_upload_over_the_cap_at_once(target: Target, settings: Any) -> None:
    settings.DATASET_IMPORT_MAX_JSON_BYTES = 50
    with pytest.raises(ValidationError, match="the limit for a COCO file is 50 bytes"):
        dataset_import_start(
            tenant=target.tenant,
            project=target.project,
            actor=target.world.manager,
            uploaded_file=upload(valid_coco()),
        )


def test_it_stops_when_the_member_who_started_it_no_longer_manages(
    target: Target, django_capture_on_commit_callbacks: Any
) -> None:
    job = start(target, django_capture_on_commit_callbacks, valid_coco())
    target.world.manager.memberships.update(role="annotator")
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and "no longer a manager" in job.message
    assert target.annotations().count() == 0


# --- REST ----------------------------------------------------------------------------------------------


def post_api(user: Any, project: Project, data: Any, org_slug: str = "demo-lab", **fields: Any) -> Any:
    url = api_url("api_project_import", org_slug=org_slug, project_id=project.pk)
    return token_client(user).post(url, {"file": upload(data), **fields}, format="multipart")


def test_it_starts_the_import_through_the_api(target: Target, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(target.world.manager, target.project, valid_coco(), create_labels="true")
    assert response.status_code == 201, response.content
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert (body["kind"], body["project"], body["state"]) == ("import_dataset", target.project.pk, "queued")
    assert job.params["create_labels"] is True and job.params["proposed"] is True and job.task_result_id


def test_it_answers_400_to_a_file_that_is_not_coco(target: Target) -> None:
    response = post_api(target.world.manager, target.project, b"plain text")
    assert response.status_code == 400
    assert response.json()["code"] == "not_coco"
    assert not Job.objects.filter(kind="import_dataset").exists()


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_api_imports_below_manager(target: Target, who: str) -> None:
    assert post_api(getattr(target.world, who), target.project, valid_coco()).status_code == 403
    assert not Job.objects.filter(kind="import_dataset").exists()


def test_it_answers_404_to_another_organisation_through_the_api(target: Target) -> None:
    outsider = target.world.outsider
    assert post_api(outsider, target.project, valid_coco()).status_code == 404
    assert post_api(outsider, target.project, valid_coco(), org_slug="other-lab").status_code == 404
    assert not Job.objects.filter(kind="import_dataset").exists()


def test_it_is_documented_in_the_schema(world: World) -> None:
    client = Client()
    client.force_login(world.manager)
    schema = client.get(reverse("api_schema"), {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/o/{org_slug}/projects/{project_id}/import/"]["post"]
    assert operation["operationId"] == "projects_import"
    assert set(operation["responses"]) >= {"201", "400"}
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert "nothing of it is imported" in operation["description"]


# --- the project page ----------------------------------------------------------------------------------


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def import_url(project: Project, org_slug: str = "demo-lab") -> str:
    return reverse("dataset_import", kwargs={"org_slug": org_slug, "project_id": project.pk})


def test_it_offers_the_form_to_managers_and_owners_only(target: Target) -> None:
    page_url = target.project.get_absolute_url()
    for user in (target.world.manager, target.world.owner):
        page = client_for(user).get(page_url).content.decode()
        assert 'data-testid="dataset-import-form"' in page and f'action="{import_url(target.project)}"' in page
    for user in (target.world.reviewer, target.world.annotator):
        assert 'data-testid="dataset-import-form"' not in client_for(user).get(page_url).content.decode()


def test_it_starts_the_job_from_the_page(target: Target, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(target.world.owner).post(
            import_url(target.project), {"file": upload(valid_coco()), "as_accepted": "on"}
        )
    job = Job.objects.get(kind="import_dataset")
    assert response.status_code == 302
    assert response["Location"] == reverse("job_detail", kwargs={"org_slug": "demo-lab", "job_id": job.pk})
    assert job.params["proposed"] is False and job.created_by == target.world.owner


def test_it_sends_a_bad_file_back_to_the_project_page(target: Target) -> None:
    response = client_for(target.world.manager).post(import_url(target.project), {"file": upload(b"hi")}, follow=True)
    assert response.redirect_chain[-1][0] == target.project.get_absolute_url()
    assert "neither a zip nor a COCO JSON file" in response.content.decode()
    assert not Job.objects.filter(kind="import_dataset").exists()


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_page_imports_below_manager(target: Target, who: str) -> None:
    response = client_for(getattr(target.world, who)).post(import_url(target.project), {"file": upload(valid_coco())})
    assert response.status_code == 403
    assert not Job.objects.filter(kind="import_dataset").exists()


def test_it_answers_404_to_another_organisation_on_the_page(target: Target) -> None:
    outsider = client_for(target.world.outsider)
    assert outsider.post(import_url(target.project), {"file": upload(valid_coco())}).status_code == 404
    assert outsider.post(import_url(target.project, "other-lab"), {"file": upload(valid_coco())}).status_code == 404
    assert not Job.objects.filter(kind="import_dataset").exists()


# --- the command ---------------------------------------------------------------------------------------


def test_it_imports_from_the_command_line(target: Target, tmp_path: Path) -> None:
    out = io.StringIO()
    path = write(tmp_path, valid_coco())
    call_command("import_dataset", str(path), "--project", str(target.project.pk), "--as-accepted", stdout=out)
    assert json.loads(out.getvalue().rsplit("\n", 2)[0])["annotations"] == 1
    assert "coco.json: 1 annotations imported as accepted objects, 1 items matched" in out.getvalue()
    annotation = target.annotations().get()
    assert annotation.proposed is False and annotation.author == target.world.owner  # the first owner


def test_it_refuses_a_malformed_file_on_the_command_line(target: Target, tmp_path: Path) -> None:
    path = write(tmp_path, b"[]")
    with pytest.raises(CommandError, match="not a COCO file"):
        call_command("import_dataset", str(path), "--project", str(target.project.pk), "--user", "manager")
    with pytest.raises(CommandError, match="is not a manager or owner"):
        call_command("import_dataset", str(path), "--project", str(target.project.pk), "--user", "reviewer")
    assert target.annotations().count() == 0
    assert os.path.exists(path)
