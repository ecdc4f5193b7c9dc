"""Evaluation: one annotation set (the prediction) against another (the ground truth) over the same
images, as mean IoU and Dice per class and overall, and COCOeval's AP for segm and bbox.

The sets
--------
An ``AnnotationSet`` (``evaluation_sets``) is a project and a selection of its objects: ``objects``
(what people stand behind) or ``preannotations`` (what a model made on its own). A ``Comparison``
takes a prediction set and a ground-truth set (always ``objects``):

- (a) an annotator's project against a reference project: ``objects`` of this project against
  ``objects`` of the reference; images are matched by their original file name. A name that is not
  unique in either project, or a pair of images of different sizes, is skipped (and counted);
- (b) a model's pre-annotations against people's work, in one project: ``preannotations`` against
  ``objects``. Only images people have finished (``done_at`` set) count: on an unfinished image an
  untouched proposal says nothing yet.

Videos are scored apart, with DAVIS' J and F per object (``video_scores``); their tables follow the
images' (which are left out when only videos were compared). An object whose RLE is not at its
image's size is skipped (and counted).

The metrics
-----------
- Semantic IoU and Dice per image and class: the union of the class's masks in each set, P and G;
  IoU = |P ∩ G| / |P ∪ G|, Dice = 2 |P ∩ G| / (|P| + |G|), computed on the RLEs (pycocotools'
  ``merge`` and ``area``, no decoding). A class counts on an image when either set has it there
  (both empty is no pair, so never 0/0); one side empty scores 0.
- Per class: the mean over those images (``mean``), and the pooled ratio over all of them
  (``pooled``: Σ|P ∩ G| / Σ|P ∪ G|, and 2Σ|P ∩ G| / Σ(|P| + |G|)). Overall: the mean of the
  classes' means, and the pooled ratio over every image and class.
- COCOeval (pycocotools, default parameters: IoU thresholds .50:.05:.95, at most 100 detections
  per image, COCO's area ranges) for ``segm`` and ``bbox``: AP, AP50, AP75, APs, APm, APl.
  Classes are matched by label name; each prediction's score is ``source_detail["score"]`` when it
  is a number, else 1.0. The COCO objects are built in memory from the two sets.
- An empty prediction set scores IoU = Dice = 0 and AP 0.0 (COCOeval's own value when there is
  ground truth and no detection). Where COCOeval leaves a figure undefined (-1: no ground-truth
  object in that size class, or nothing at all) it is reported as ``None`` (JSON ``null``, "—").

Memory: images are read in batches with their objects (``ITEM_BATCH``); the IoU and Dice sums grow
with the classes only. COCOeval needs both sets whole, so the RLE strings of every object compared
are held until it has run.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
from django.db.models import QuerySet
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# The sets live in evaluation_sets; they are named here too, where callers have always found them.
from annotation.datasets.evaluation_sets import OBJECTS as OBJECTS
from annotation.datasets.evaluation_sets import PREANNOTATIONS as PREANNOTATIONS
from annotation.datasets.evaluation_sets import SELECTIONS as SELECTIONS
from annotation.datasets.evaluation_sets import (
    SKIP_NAME,
    AnnotationSet,
    Comparison,
    selected_rows,
)
from annotation.datasets.tables import FLOAT, INT, Column, Table
from annotation.datasets.video_scores import VideoEvaluation, evaluate_videos
from annotation.models import Label, MediaItem, Project
from platform_core.tenancy import Tenant

ITEM_BATCH = 200
# (name, IoU threshold or None for .50:.95, COCO area range), as COCOeval.summarize's first six.
COCO_METRICS = (
    ("AP", None, "all"),
    ("AP50", 0.5, "all"),
    ("AP75", 0.75, "all"),
    ("APs", None, "small"),
    ("APm", None, "medium"),
    ("APl", None, "large"),
)
IOU_TYPES = ("segm", "bbox")
SKIP_SIZE = "different image size"


@dataclass(frozen=True)
class Pair:
    """One image in both sets (the same item when both sets are of one project)."""

    prediction_item: int
    truth_item: int
    width: int
    height: int


@dataclass(frozen=True)
class Obj:
    name: str  # the class: the label's name
    rle: dict[str, Any]
    area: float
    bbox: list[float]
    score: float


@dataclass
class ClassFigures:
    name: str
    items: int = 0
    prediction_objects: int = 0
    truth_objects: int = 0
    iou_sum: float = 0.0
    dice_sum: float = 0.0
    intersection: int = 0
    union: int = 0
    areas: int = 0  # Σ (|P| + |G|)

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / self.items if self.items else None

    @property
    def mean_dice(self) -> float | None:
        return self.dice_sum / self.items if self.items else None

    @property
    def pooled_iou(self) -> float | None:
        return self.intersection / self.union if self.union else None

    @property
    def pooled_dice(self) -> float | None:
        return 2 * self.intersection / self.areas if self.areas else None

    def add(self, intersection: int, union: int, prediction_area: int, truth_area: int) -> None:
        self.items += 1
        self.iou_sum += intersection / union
        self.dice_sum += 2 * intersection / (prediction_area + truth_area)
        self.intersection += intersection
        self.union += union
        self.areas += prediction_area + truth_area


@dataclass
class Evaluation:
    prediction: str
    truth: str
    items_compared: int = 0
    items_unmatched: int = 0  # prediction images with no image of that name in the ground truth
    items_skipped: dict[str, int] = field(default_factory=dict)
    finished_only: bool = False
    prediction_objects: int = 0
    truth_objects: int = 0
    objects_skipped: int = 0
    classes: list[ClassFigures] = field(default_factory=list)
    coco: dict[str, dict[str, float | None]] = field(default_factory=dict)
    videos: VideoEvaluation | None = None  # None when neither project holds a video

    @property
    def _scored(self) -> list[ClassFigures]:
        return [figures for figures in self.classes if figures.items]

    @property
    def mean_iou(self) -> float | None:
        scored = self._scored
        return sum(f.mean_iou or 0.0 for f in scored) / len(scored) if scored else None

    @property
    def mean_dice(self) -> float | None:
        scored = self._scored
        return sum(f.mean_dice or 0.0 for f in scored) / len(scored) if scored else None

    @property
    def pooled_iou(self) -> float | None:
        union = sum(f.union for f in self.classes)
        return sum(f.intersection for f in self.classes) / union if union else None

    @property
    def pooled_dice(self) -> float | None:
        areas = sum(f.areas for f in self.classes)
        return 2 * sum(f.intersection for f in self.classes) / areas if areas else None

    @property
    def title(self) -> str:
        return f"{self.prediction} against {self.truth}"

    def tables(self) -> list[Table]:
        """The image tables (left out when only videos were compared), then the video tables."""
        images = [self.summary_table(), self.classes_table(), self.coco_table()]
        if self.videos is None:
            return images
        return (images if self.items_compared else []) + self.videos.tables()

    def summary_table(self) -> Table:
        note = f"Prediction: {self.prediction}; ground truth: {self.truth}"
        if self.finished_only:
            note += "; finished images only"
        table = Table(
            "evaluation",
            "Evaluation",
            [Column("figure", "Figure"), Column("value", "Value", FLOAT, digits=4)],
            note=note,
        )
        rows: list[tuple[str, Any]] = [
            ("Images compared", self.items_compared),
            ("Images without a match", self.items_unmatched),
            *((f"Images skipped: {reason}", n) for reason, n in sorted(self.items_skipped.items())),
            ("Objects (prediction)", self.prediction_objects),
            ("Objects (ground truth)", self.truth_objects),
            ("Objects skipped (mask size is not the image's)", self.objects_skipped),
            ("Mean IoU", self.mean_iou),
            ("Mean Dice", self.mean_dice),
            ("Pooled IoU", self.pooled_iou),
            ("Pooled Dice", self.pooled_dice),
        ]
        for name, value in rows:
            table.add(name, value)
        return table

    def classes_table(self) -> Table:
        table = Table(
            "evaluation_classes",
            "IoU and Dice per class",
            [
                Column("class", "Class"),
                Column("items", "Images", INT),
                Column("prediction_objects", "Predicted", INT),
                Column("truth_objects", "Ground truth", INT),
                Column("mean_iou", "Mean IoU", FLOAT),
                Column("mean_dice", "Mean Dice", FLOAT),
                Column("pooled_iou", "Pooled IoU", FLOAT),
                Column("pooled_dice", "Pooled Dice", FLOAT),
            ],
            note="Semantic masks per image and class; means over the images holding the class in either set",
        )
        for f in self.classes:
            scores = (f.mean_iou, f.mean_dice, f.pooled_iou, f.pooled_dice)
            table.add(f.name, f.items, f.prediction_objects, f.truth_objects, *scores)
        table.add(
            "All classes",
            None,  # a count of images per class; summed, it would count images more than once
            self.prediction_objects,
            self.truth_objects,
            self.mean_iou,
            self.mean_dice,
            self.pooled_iou,
            self.pooled_dice,
        )
        return table

    def coco_table(self) -> Table:
        table = Table(
            "evaluation_coco",
            "COCO average precision",
            [Column("metric", "Metric"), *(Column(t, t, FLOAT) for t in IOU_TYPES)],
            note="COCOeval with its default parameters; — where it is not defined",
        )
        for name, _, _ in COCO_METRICS:
            table.add(name, *(self.coco.get(t, {}).get(name) for t in IOU_TYPES))
        return table

    def as_dict(self) -> dict[str, Any]:
        return {
            "prediction": self.prediction,
            "truth": self.truth,
            "finished_only": self.finished_only,
            "items_compared": self.items_compared,
            "items_unmatched": self.items_unmatched,
            "items_skipped": self.items_skipped,
            "prediction_objects": self.prediction_objects,
            "truth_objects": self.truth_objects,
            "objects_skipped": self.objects_skipped,
            "mean_iou": self.mean_iou,
            "mean_dice": self.mean_dice,
            "pooled_iou": self.pooled_iou,
            "pooled_dice": self.pooled_dice,
            "classes": [
                {
                    "name": f.name,
                    "items": f.items,
                    "prediction_objects": f.prediction_objects,
                    "truth_objects": f.truth_objects,
                    "mean_iou": f.mean_iou,
                    "mean_dice": f.mean_dice,
                    "pooled_iou": f.pooled_iou,
                    "pooled_dice": f.pooled_dice,
                }
                for f in self.classes
            ],
            "coco": self.coco,
            "videos": self.videos.as_dict() if self.videos else None,
        }


# --- choosing the sets --------------------------------------------------------------------------


def reference_projects(tenant: Tenant, project: Project) -> list[dict[str, Any]]:
    """The organisation's other projects, each a possible ground truth for ``project``."""
    return list(Project.objects.for_org(tenant.org).exclude(pk=project.pk).order_by("name", "id").values("id", "name"))


# --- reading the sets ---------------------------------------------------------------------------


def _images(project: Project, *, finished_only: bool) -> QuerySet[MediaItem]:
    images = MediaItem.objects.filter(project=project, kind=MediaItem.Kind.IMAGE)
    if finished_only:
        images = images.filter(done_at__isnull=False)
    return images.order_by("id")


def _pairs(comparison: Comparison) -> tuple[list[Pair], int, Counter[str]]:
    """The images both sets are compared on, the prediction images without a match, and the
    images skipped, counted by reason."""
    images = _images(comparison.prediction.project, finished_only=comparison.finished_only)
    if comparison.same_project:
        pairs = [Pair(pk, pk, w, h) for pk, w, h in images.values_list("id", "width", "height").iterator()]
        return pairs, 0, Counter()
    truth_images = _images(comparison.truth.project, finished_only=False)
    by_name: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for pk, name, w, h in truth_images.values_list("id", "original_name", "width", "height").iterator():
        by_name[name].append((pk, w, h))
    predicted = list(images.values_list("id", "original_name", "width", "height"))
    names = Counter(name for _, name, _, _ in predicted)
    pairs, unmatched, skipped = [], 0, Counter()
    for pk, name, w, h in predicted:
        matches = by_name.get(name, [])
        if not matches:
            unmatched += 1
        elif len(matches) > 1 or names[name] > 1:
            skipped[SKIP_NAME] += 1
        elif matches[0][1:] != (w, h):
            skipped[SKIP_SIZE] += 1
        else:
            pairs.append(Pair(pk, matches[0][0], w, h))
    return pairs, unmatched, skipped


def _selected(selection: AnnotationSet, item_ids: Sequence[int]) -> Iterator[dict[str, Any]]:
    return selected_rows(selection, item_ids, "media_id", "label__name", "rle", "area", "bbox", "score")


def _score(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    return 1.0


def _objects(
    selection: AnnotationSet, item_ids: Sequence[int], sizes: dict[int, tuple[int, int]]
) -> tuple[dict[int, list[Obj]], int]:
    """``({item id: [Obj, …]}, objects skipped)``: the set's objects on those items."""
    found: dict[int, list[Obj]] = defaultdict(list)
    skipped = 0
    for row in _selected(selection, item_ids):
        rle = row["rle"]
        width, height = sizes[row["media_id"]]
        if not isinstance(rle, dict) or list(rle.get("size", [])) != [height, width] or "counts" not in rle:
            skipped += 1
            continue
        bbox = row["bbox"] if isinstance(row["bbox"], list) and len(row["bbox"]) == 4 else None
        if bbox is None:
            bbox = [float(v) for v in coco_mask.toBbox(rle)]
        found[row["media_id"]].append(Obj(row["label__name"], rle, float(row["area"]), bbox, _score(row["score"])))
    return found, skipped


def _class_names(comparison: Comparison) -> list[str]:
    """Class names in the ground truth's label order, then the prediction's other labels."""
    names: list[str] = []
    for project in (comparison.truth.project, comparison.prediction.project):
        for name in (
            Label.objects.filter(project=project)
            .exclude(kind=Label.Kind.CLASSIFICATION)
            .order_by("order", "name", "id")
            .values_list("name", flat=True)
        ):
            if name not in names:
                names.append(name)
    return names


def _union(rles: list[dict[str, Any]]) -> dict[str, Any]:
    return rles[0] if len(rles) == 1 else coco_mask.merge(rles)


def _area(rle: dict[str, Any]) -> int:
    return int(coco_mask.area(rle))


def _semantic(figures: ClassFigures, predicted: list[Obj], truth: list[Obj]) -> None:
    p = _union([o.rle for o in predicted]) if predicted else None
    g = _union([o.rle for o in truth]) if truth else None
    p_area = _area(p) if p is not None else 0
    g_area = _area(g) if g is not None else 0
    if p is not None and g is not None:
        intersection = _area(coco_mask.merge([p, g], intersect=True))
        union = _area(coco_mask.merge([p, g]))
    else:
        intersection, union = 0, p_area + g_area
    if union:  # a stored mask is never empty; guard 0/0 all the same
        figures.add(intersection, union, p_area, g_area)


def _batches(pairs: list[Pair]) -> Iterator[list[Pair]]:
    iterator = iter(pairs)
    while batch := list(islice(iterator, ITEM_BATCH)):
        yield batch


def _coco(images: list[dict], categories: list[dict], annotations: list[dict]) -> COCO:
    # Built directly rather than with COCO.loadRes, which cannot take an empty result list.
    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    coco.createIndex()
    return coco


def _average_precision(evaluation: COCOeval, iou: float | None, area: str) -> float | None:
    """One of COCOeval.summarize's AP figures (at 100 detections), without its printing."""
    params = evaluation.params
    precision = evaluation.eval["precision"]  # [IoU thresholds, recall, class, area, max detections]
    if iou is not None:
        precision = precision[np.isclose(params.iouThrs, iou)]
    areas = [i for i, name in enumerate(params.areaRngLbl) if name == area]
    dets = [i for i, n in enumerate(params.maxDets) if n == 100]
    values = precision[:, :, :, areas, :][:, :, :, :, dets]
    values = values[values > -1]
    return float(np.mean(values)) if values.size else None


def _coco_figures(images: list[dict], names: list[str], gt: list[dict], dt: list[dict]) -> dict:
    undefined: dict[str, dict[str, float | None]] = {t: {m: None for m, _, _ in COCO_METRICS} for t in IOU_TYPES}
    if not images or not gt:
        return undefined  # COCOeval defines nothing without ground truth
    categories = [{"id": index, "name": name} for index, name in enumerate(names, start=1)]
    figures: dict[str, dict[str, float | None]] = {}
    # pycocotools prints its progress to stdout: keep it out of the command's output and the logs.
    with contextlib.redirect_stdout(io.StringIO()):
        truth, predicted = _coco(images, categories, gt), _coco(images, categories, dt)
        for iou_type in IOU_TYPES:
            evaluation = COCOeval(truth, predicted, iou_type)
            evaluation.evaluate()
            evaluation.accumulate()
            figures[iou_type] = {name: _average_precision(evaluation, iou, area) for name, iou, area in COCO_METRICS}
    return figures


def evaluate(comparison: Comparison) -> Evaluation:
    """Score ``comparison``'s prediction set against its ground truth (see the module's text), its
    images here and its videos by ``video_scores``."""
    pairs, unmatched, skipped = _pairs(comparison)
    names = _class_names(comparison)
    classes = {name: ClassFigures(name) for name in names}
    category = {name: index for index, name in enumerate(names, start=1)}
    result = Evaluation(
        prediction=comparison.prediction.describe(),
        truth=comparison.truth.describe(),
        items_compared=len(pairs),
        items_unmatched=unmatched,
        items_skipped=dict(skipped),
        finished_only=comparison.finished_only,
    )
    images: list[dict] = []
    gt: list[dict] = []
    dt: list[dict] = []
    for batch in _batches(pairs):
        predicted, p_skipped = _objects(
            comparison.prediction,
            [pair.prediction_item for pair in batch],
            {pair.prediction_item: (pair.width, pair.height) for pair in batch},
        )
        truth, t_skipped = _objects(
            comparison.truth,
            [pair.truth_item for pair in batch],
            {pair.truth_item: (pair.width, pair.height) for pair in batch},
        )
        result.objects_skipped += p_skipped + t_skipped
        for pair in batch:
            image_id = len(images) + 1
            images.append({"id": image_id, "width": pair.width, "height": pair.height})
            p_objects, t_objects = predicted.get(pair.prediction_item, []), truth.get(pair.truth_item, [])
            for name in {o.name for o in p_objects} | {o.name for o in t_objects}:
                if name not in classes:  # a label added while this ran
                    classes[name] = ClassFigures(name)
                    category[name] = len(category) + 1
                p_class = [o for o in p_objects if o.name == name]
                t_class = [o for o in t_objects if o.name == name]
                figures = classes[name]
                figures.prediction_objects += len(p_class)
                figures.truth_objects += len(t_class)
                _semantic(figures, p_class, t_class)
            for target, objects, with_score in ((gt, t_objects, False), (dt, p_objects, True)):
                for o in objects:
                    entry = {
                        "id": len(target) + 1,
                        "image_id": image_id,
                        "category_id": category[o.name],
                        "segmentation": o.rle,
                        "area": o.area,
                        "bbox": o.bbox,
                        "iscrowd": 0,
                    }
                    if with_score:
                        entry["score"] = o.score
                    target.append(entry)
    result.prediction_objects, result.truth_objects = len(dt), len(gt)
    result.classes = list(classes.values())
    result.coco = _coco_figures(images, list(category), gt, dt)
    result.videos = evaluate_videos(comparison)
    return result
