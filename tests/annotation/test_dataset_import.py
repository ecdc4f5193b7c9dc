"""COCO import of good files: pre-annotations or accepted objects in the file's order; the round trip
(export with images → import into a fresh project → export again gives the same masks, answers and
label kinds); polygons, uncompressed RLE and boxes rasterised as pycocotools does; labels, answers and
items matched by name."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from annotation.datasets.coco_import import dataset_import_run
from annotation.masks import mask_decode, mask_encode
from annotation.models import Annotation, Label, MediaItem, Question
from platform_core.tenancy import resolve_tenant
from tests.annotation.dataset_import_world import (
    H,
    Target,
    W,
    blob,
    run,
    valid_coco,
    write,
)
from tests.annotation.dataset_project import make_dataset_project, run_export
from tests.conftest import World
from tests.factories import ProjectFactory, make_image

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


@pytest.fixture
def target(world: World) -> Target:
    return Target(world)


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
