"""Dataset export: COCO JSON that pycocotools loads and evaluates (every annotation's mask equal to
the stored one, AP 1.0 against itself), polygons that rasterise back to the masks, mask PNGs that
decode to the stored masks, zips with the stored images byte for byte, and what is left out
(videos, pre-annotations awaiting a person, items outside accepted tasks)."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from PIL import Image
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annotation.datasets.coco_export import mask_polygons
from annotation.datasets.naming import FileNames, safe_stem
from annotation.datasets.options import ExportOptions
from annotation.masks import mask_decode, rle_iou
from annotation.models import Annotation, Label, Task
from tests.annotation.dataset_project import DatasetProject, ellipse, make_dataset_project, run_export
from tests.conftest import World


@pytest.fixture
def dataset(world: World) -> DatasetProject:
    return make_dataset_project(world)


def load(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its timings
        return COCO(str(path))


def people_objects(dataset: DatasetProject) -> dict[int, Annotation]:
    """The image objects an export takes by default: not the video's, not the proposal."""
    return {
        a.pk: a for a in Annotation.objects.filter(media__project=dataset.project, media__kind="image", proposed=False)
    }


# --- COCO ---------------------------------------------------------------------------------------


def test_it_exports_coco_that_pycocotools_loads_with_every_stored_mask(dataset: DatasetProject, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path)
    coco = load(path)
    stored = people_objects(dataset)
    assert set(coco.getAnnIds()) == set(stored) and len(stored) == 7
    for annotation_id, annotation in coco.anns.items():
        row = stored[annotation_id]
        # The stored compressed RLE as it is, and the mask pycocotools makes of it is the stored one.
        assert annotation["segmentation"] == row.rle
        assert np.array_equal(coco.annToMask(annotation).astype(bool), mask_decode(row.rle))
        assert annotation["image_id"] == row.media_id and annotation["category_id"] == row.label_id
        assert annotation["area"] == float(row.area) and annotation["bbox"] == row.bbox
        assert annotation["iscrowd"] == 0 and annotation["source"] == "manual"
    assert report["images"] == 3 and report["annotations"] == 7 and report["format"] == "coco"


def test_it_scores_ap_one_against_itself_for_segm_and_bbox(dataset: DatasetProject, tmp_path: Path) -> None:
    _, path = run_export(dataset.project, tmp_path)
    truth = load(path)
    results = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "segmentation": a["segmentation"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in truth.dataset["annotations"]
    ]
    for kind in ("segm", "bbox"):
        with contextlib.redirect_stdout(io.StringIO()):
            detections = truth.loadRes([dict(r) for r in results])
            evaluation = COCOeval(truth, detections, kind)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        assert evaluation.stats[0] == 1.0, kind


def test_it_writes_categories_images_and_answers_as_coco_with_extra_keys(
    dataset: DatasetProject, tmp_path: Path
) -> None:
    _, path = run_export(dataset.project, tmp_path)
    data = json.loads(path.read_text())
    assert data["licenses"] == []
    assert data["info"]["description"] == "Pets & things" and data["info"]["contributor"] == "Demo Lab"
    # Mask and box labels in label order; the classification label is no category.
    assert data["categories"] == [
        {
            "id": dataset.cat.pk,
            "name": "cat",
            "supercategory": "Pets & things",
            "color": "#ff8800",
            "kind": "mask",
            "questions": [{"id": dataset.pose.pk, "text": "Pose", "choices": ["sitting", "lying"], "default": ""}],
        },
        {
            "id": dataset.box.pk,
            "name": "sign",
            "supercategory": "Pets & things",
            "color": "#0044ff",
            "kind": "box",
            "questions": [],
        },
    ]
    assert data["item_questions"] == [
        {"id": dataset.light.pk, "text": "Light", "choices": ["day", "night"], "default": "day"}
    ]
    assert data["classification_labels"] == [
        {
            "id": dataset.scene.pk,
            "name": "scene",
            "color": "#22aa22",
            "questions": [{"id": dataset.indoor.pk, "text": "Where", "choices": ["indoor", "outdoor"], "default": ""}],
        }
    ]
    images = {image["id"]: image for image in data["images"]}
    assert images == {
        dataset.street.pk: {
            "id": dataset.street.pk,
            "file_name": "photo 1.png",
            "width": 96,
            "height": 64,
            "attributes": {"Light": "night", "scene: Where": "outdoor"},
        },
        # The same name again: made unique with the item's id.
        dataset.garden.pk: {
            "id": dataset.garden.pk,
            "file_name": f"photo 1_{dataset.garden.pk}.png",
            "width": 80,
            "height": 60,
            "attributes": {"Light": "day"},
        },
        # Stored re-encoded as PNG: the name says what the file is.
        dataset.scan.pk: {"id": dataset.scan.pk, "file_name": "scan.png", "width": 40, "height": 30, "attributes": {}},
    }
    by_id = {a["id"]: a for a in data["annotations"]}
    assert by_id[dataset.objects["blob"].pk]["attributes"] == {"Pose": "sitting"}
    assert by_id[dataset.objects["ring"].pk]["attributes"] == {"Pose": "lying"}
    assert by_id[dataset.objects["sign"].pk]["attributes"] == {}
    assert all("score" not in a and "proposed" not in a for a in data["annotations"])
    # Per image, bottom first: the order the instance PNGs number them in.
    garden = [a["id"] for a in data["annotations"] if a["image_id"] == dataset.garden.pk]
    assert garden == [dataset.objects["under"].pk, dataset.objects["triangle"].pk]


def test_it_leaves_out_pre_annotations_awaiting_a_person_unless_asked(dataset: DatasetProject, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path)
    assert dataset.proposed.pk not in load(path).anns
    assert report["proposed_left_out"] == 1

    report, path = run_export(dataset.project, tmp_path, include_proposed=True)
    proposal = load(path).anns[dataset.proposed.pk]
    assert proposal["proposed"] is True and proposal["source"] == "model" and proposal["score"] == 0.875
    assert np.array_equal(load(path).annToMask(proposal).astype(bool), mask_decode(dataset.proposed.rle))
    assert report["proposed_left_out"] == 0 and report["annotations"] == 8


def test_it_skips_videos_with_a_report_line(dataset: DatasetProject, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path)
    data = json.loads(path.read_text())
    assert dataset.video.pk not in {image["id"] for image in data["images"]}
    assert {a["image_id"] for a in data["annotations"]} <= {dataset.street.pk, dataset.garden.pk}
    assert report["skipped"] == [
        {"name": "clip.mp4", "reason": "a video: these formats hold images (YouTube-VIS is another format)"}
    ]
    assert report["skipped_count"] == 1


def test_it_exports_only_the_items_of_accepted_tasks_when_asked(
    world: World, dataset: DatasetProject, tmp_path: Path
) -> None:
    accepted = Task.objects.create(project=dataset.project, name="A", state=Task.State.ACCEPTED)
    submitted = Task.objects.create(project=dataset.project, name="B", state=Task.State.SUBMITTED)
    dataset.garden.task = accepted
    dataset.garden.save(update_fields=["task"])
    dataset.street.task = submitted
    dataset.street.save(update_fields=["task"])

    report, path = run_export(dataset.project, tmp_path, only="accepted")
    coco = load(path)
    assert set(coco.imgs) == {dataset.garden.pk}
    assert set(coco.anns) == {dataset.objects["triangle"].pk, dataset.objects["under"].pk}
    assert report["items_not_accepted_left_out"] == 3  # street, scan and the video
    assert report["proposed_left_out"] == 1  # the garden's proposal

    report, _ = run_export(dataset.project, tmp_path)
    assert report["images"] == 3 and "items_not_accepted_left_out" not in report


def test_it_exports_an_empty_project_as_valid_coco(world: World, tmp_path: Path) -> None:
    from tests.factories import ProjectFactory

    project = ProjectFactory(organization=world.demo.org, name="Empty")
    report, path = run_export(project, tmp_path)
    coco = load(path)
    assert coco.dataset["images"] == [] and coco.dataset["annotations"] == [] and coco.dataset["categories"] == []
    assert report["images"] == 0


# --- polygons -----------------------------------------------------------------------------------


def test_it_exports_polygons_that_rasterise_back_to_the_masks(dataset: DatasetProject, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path, polygons=True)
    coco = load(path)
    stored = people_objects(dataset)
    for annotation_id, annotation in coco.anns.items():
        polygons = annotation["segmentation"]
        assert isinstance(polygons, list) and polygons, annotation_id
        assert all(len(polygon) >= 6 and len(polygon) % 2 == 0 for polygon in polygons)
        mask = coco.annToMask(annotation).astype(bool)
        expected = mask_decode(stored[annotation_id].rle)
        if annotation_id == dataset.objects["ring"].pk:
            # COCO polygons have no holes: the ring comes back as its outline, filled.
            assert (mask >= expected).all() and mask[36, 70] and not expected[36, 70]
            continue
        rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle_iou({"size": rle["size"], "counts": rle["counts"].decode()}, stored[annotation_id].rle) > 0.9
        # Traced along the pixel edges: shapes without holes come back pixel for pixel.
        assert np.array_equal(mask, expected), annotation_id
    # The two separate parts are two polygons.
    assert len(coco.anns[dataset.objects["parts"].pk]["segmentation"]) == 2
    assert report["polygons_holes_filled"] == 1 and report["polygons_kept_as_rle"] == 0


def test_it_keeps_the_rle_of_an_object_without_a_polygon(dataset: DatasetProject) -> None:
    from annotation.datasets.coco_export import AnswerTexts, CocoAnnotations

    annotations = CocoAnnotations(AnswerTexts([], []), polygons=True)
    empty = {"size": [4, 4], "counts": "`0"}  # sixteen background pixels
    row = {"id": 1, "media_id": 2, "label_id": 3, "rle": empty, "bbox": [0.0] * 4, "area": 0, "answers": {}}
    entry = annotations.entry({**row, "source": "import"})
    assert entry["segmentation"] == empty and annotations.kept_as_rle == 1
    assert mask_polygons(np.zeros((4, 4), dtype=bool)) == ([], False)


def test_it_traces_blobs_exactly_at_the_image_border() -> None:
    for centre in ((0, 0), (39, 29), (20, 0)):
        mask = ellipse(30, 40, centre, (9, 6), 30)
        polygons, holes = mask_polygons(mask)
        back = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, 30, 40))).astype(bool)
        assert np.array_equal(back, mask) and not holes


# --- mask PNGs ----------------------------------------------------------------------------------


def test_it_exports_mask_pngs_that_decode_to_the_stored_masks(dataset: DatasetProject, tmp_path: Path) -> None:
    report, path = run_export(dataset.project, tmp_path, format="masks")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        classes = json.loads(archive.read("classes.json"))
        index = json.loads(archive.read("masks/instances.json"))
        pngs = {name: archive.read(name) for name in names if name.endswith(".png")}
    assert classes["classes"] == [
        {"index": 0, "name": "background", "color": "#000000", "label_id": None},
        {"index": 1, "name": "cat", "color": "#ff8800", "label_id": dataset.cat.pk},
        {"index": 2, "name": "sign", "color": "#0044ff", "label_id": dataset.box.pk},
    ]
    class_of = {dataset.cat.pk: 1, dataset.box.pk: 2}
    assert not any(name.startswith("images/") for name in names)
    entries = {entry["image_id"]: entry for entry in index["images"]}
    assert set(entries) == {dataset.street.pk, dataset.garden.pk, dataset.scan.pk}
    assert entries[dataset.garden.pk]["semantic"] == f"masks/semantic/photo 1_{dataset.garden.pk}.png"

    for item in (dataset.street, dataset.garden, dataset.scan):
        entry = entries[item.pk]
        semantic_image = Image.open(io.BytesIO(pngs[entry["semantic"]]))
        instance_image = Image.open(io.BytesIO(pngs[entry["instances"]]))
        assert semantic_image.mode == "P" and instance_image.mode == "I;16"
        assert semantic_image.getpalette()[:9] == [0, 0, 0, 0xFF, 0x88, 0x00, 0x00, 0x44, 0xFF]
        semantic, instances = np.array(semantic_image), np.array(instance_image)
        assert semantic.shape == instances.shape == (item.height, item.width)

        objects = list(Annotation.objects.filter(media=item, proposed=False).order_by("z_order", "id"))
        assert [(o["value"], o["annotation_id"], o["category_id"]) for o in entry["objects"]] == [
            (value, a.pk, a.label_id) for value, a in enumerate(objects, start=1)
        ]
        above = np.zeros((item.height, item.width), dtype=bool)
        for value, annotation in reversed(list(enumerate(objects, start=1))):
            stored = mask_decode(annotation.rle)
            # What shows of each object is its stored mask less the objects above it.
            assert np.array_equal(instances == value, stored & ~above), annotation
            assert (semantic[instances == value] == class_of[annotation.label_id]).all()
            above |= stored
        assert np.array_equal(instances == 0, ~above) and np.array_equal(semantic == 0, ~above)

    # Objects nobody covers come back whole from their PNG.
    street = np.array(Image.open(io.BytesIO(pngs[entries[dataset.street.pk]["instances"]])))
    for name, value in (("sign", 3), ("speck", 4), ("parts", 5)):
        assert np.array_equal(street == value, mask_decode(dataset.objects[name].rle)), name
    assert report["format"] == "masks" and report["images"] == 3 and report["skipped_count"] == 1


# --- zips with images ---------------------------------------------------------------------------


@pytest.mark.parametrize("export_format", ["coco", "masks"])
def test_it_zips_the_stored_images_byte_for_byte(dataset: DatasetProject, tmp_path: Path, export_format: str) -> None:
    report, path = run_export(dataset.project, tmp_path, format=export_format, include_images=True)
    assert path.suffix == ".zip" and report["file"] == path.name
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        expected = {
            "images/photo 1.png": dataset.street,
            f"images/photo 1_{dataset.garden.pk}.png": dataset.garden,
            "images/scan.png": dataset.scan,
        }
        assert {name for name in names if name.startswith("images/")} == set(expected)
        for name, item in expected.items():
            with default_storage.open(item.file.name, "rb") as stored:
                assert archive.read(name) == stored.read()
        if export_format == "coco":
            assert "annotations/instances.json" in names
            data = json.loads(archive.read("annotations/instances.json"))
            assert {image["file_name"] for image in data["images"]} == {n.removeprefix("images/") for n in expected}
        else:
            assert {"classes.json", "masks/instances.json"} <= names


# --- options and names --------------------------------------------------------------------------


def test_it_refuses_unknown_options_per_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ExportOptions.parse({"format": "voc", "only": "done", "polygons": "yes", "colour": 1})
    errors = caught.value.message_dict
    assert set(errors) == {"format", "only", "polygons", "__all__"}
    assert "coco or masks" in errors["format"][0]
    assert ExportOptions.parse({"format": "masks", "polygons": True}).polygons is False  # polygons are COCO's
    assert ExportOptions.parse({}).extension == ".json"
    assert ExportOptions.parse({"include_images": True}).extension == ".zip"


def test_it_refuses_mask_pngs_of_more_labels_than_a_palette_holds(world: World, tmp_path: Path) -> None:
    from tests.factories import ProjectFactory

    project = ProjectFactory(organization=world.demo.org, name="Many")
    Label.objects.bulk_create(Label(project=project, name=f"l{i}", order=i) for i in range(256))
    with pytest.raises(ValidationError, match="at most 255 labels"):
        run_export(project, tmp_path, format="masks")
    assert run_export(project, tmp_path)[0]["categories"] == 256


@pytest.mark.parametrize(
    ("original", "stem"),
    [
        ("photo.jpg", "photo"),
        ("day 2/IMG 0001.JPG", "IMG 0001"),
        ("C:\\Users\\me\\cat.png", "cat"),
        ("../../etc/passwd", "passwd"),
        (".hidden.png", "hidden"),
        ('a<b>c:"d"|e?*.png', "a_b_c__d__e__"),
        ("chat été.png", "chat été"),
        ("..", ""),
        ("tab\there.png", "tab_here"),
    ],
)
def test_it_makes_file_names_safe(original: str, stem: str) -> None:
    assert safe_stem(original) == stem


def test_it_makes_names_unique_regardless_of_case_and_extension() -> None:
    names = FileNames()
    assert names.name(item_id=1, original_name="Cat.jpg", stored_name="x/1.jpg") == ("Cat", "Cat.jpg")
    assert names.name(item_id=2, original_name="cat.png", stored_name="x/2.png") == ("cat_2", "cat_2.png")
    assert names.name(item_id=3, original_name="cat_2.jpg", stored_name="x/3.jpg") == ("cat_2_3", "cat_2_3.jpg")
    assert names.name(item_id=4, original_name="..", stored_name="x/4.webp") == ("item", "item.webp")
    assert names.name(item_id=5, original_name="", stored_name="x/5.webp") == ("item_5", "item_5.webp")


def test_it_never_hands_out_a_name_twice_in_a_large_export() -> None:
    names = FileNames()
    given = [
        names.name(item_id=i, original_name=f"IMG_{i % 7000}.{'JPG' if i % 3 else 'jpg'}", stored_name="x.jpg")[1]
        for i in range(20000)
    ]
    assert len({name.casefold() for name in given}) == len(given)
    # The first of each name keeps it; the repeats take their item's id.
    assert given[:3] == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"] and given[7000] == "IMG_0_7000.jpg"
