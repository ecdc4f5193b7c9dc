"""COCO JSON out of a project: the entries, polygons from masks, and a writer that streams the file.

The file is what pycocotools' ``COCO`` loads (``info``, ``licenses``, ``images``, ``annotations``,
``categories``) with a few extra keys loaders ignore:

- ``images``: ``id`` (the item's id), ``file_name`` (see ``naming``), ``width`` and ``height`` as
  stored (after EXIF orientation), and ``attributes``: the answers to the per-item questions,
  ``{question text: answer}`` (answers to a classification label's questions as
  ``"<label>: <question text>"``);
- ``categories``: one per mask or box label (``id`` = the label's id, in label order), with
  ``supercategory`` the project's name, and ``color`` and ``questions``
  (``[{id, text, choices, default}]``) kept beside;
- ``annotations``: ``id`` (the annotation's id), ``image_id``, ``category_id``, ``segmentation``
  (the stored compressed RLE as it is, or polygons), ``area`` and ``bbox`` as stored, ``iscrowd``
  0, ``attributes`` (``{question text: answer}``), ``source`` (manual, model, import, crowd), the
  model's ``score`` where there is one, and ``"proposed": true`` on pre-annotations awaiting a
  person when an export keeps them;
- top level: ``item_questions`` and ``classification_labels``, which the items' attributes answer.

Polygons: COCO polygons run along pixel edges (pycocotools' ``frPyObjects`` fills a pixel whose
centre lies inside), but OpenCV's contours run through the centres of the outermost pixels, half a
pixel inside. So the contours are traced on the mask scaled up 2×, where they run a quarter pixel
inside the edges, and mapped back: the polygons then fill exactly the mask's pixels. COCO polygons
have no holes (pycocotools unions an object's polygons): an object with holes is exported as its
outlines, holes filled, and counted. An object without a polygon of three points or more keeps its
RLE, and is counted too.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import cv2
import numpy as np

from annotation.masks import mask_decode
from annotation.models import Label, Project, Question


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def question_entry(question: Question) -> dict[str, Any]:
    return {"id": question.pk, "text": question.text, "choices": list(question.choices), "default": question.default}


def category_entry(label: Label, project: Project, questions: Iterable[Question]) -> dict[str, Any]:
    return {
        "id": label.pk,
        "name": label.name,
        "supercategory": project.name or "",
        "color": label.color,
        "kind": label.kind,  # mask or box: an import creating the label gives it back its kind
        "questions": [question_entry(q) for q in questions if q.label_id == label.pk],
    }


class AnswerTexts:
    """Turns stored answers ``{question id: choice}`` into ``{question text: choice}``."""

    def __init__(self, questions: Iterable[Question], classification_labels: Iterable[Label]) -> None:
        names = {label.pk: label.name for label in classification_labels}
        self._keys: dict[str, str] = {}
        for question in questions:
            if question.label_id is None:
                self._keys[str(question.pk)] = question.text
            elif question.label_id in names:
                self._keys[str(question.pk)] = f"{names[question.label_id]}: {question.text}"
            else:
                self._keys[str(question.pk)] = question.text  # a question about objects of that label

    def __call__(self, answers: Any) -> dict[str, str]:
        if not isinstance(answers, dict):
            return {}
        # An answer to a question deleted since has nothing left to name it: it is left out.
        return {self._keys[key]: value for key, value in answers.items() if key in self._keys}


def image_entry(item_id: int, file_name: str, width: int, height: int, attributes: dict[str, str]) -> dict[str, Any]:
    return {"id": item_id, "file_name": file_name, "width": width, "height": height, "attributes": attributes}


def annotation_entry(annotation: dict[str, Any], segmentation: Any, attributes: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": annotation["id"],
        "image_id": annotation["media_id"],
        "category_id": annotation["label_id"],
        "segmentation": segmentation,
        "area": float(annotation["area"]),
        "bbox": [float(v) for v in annotation["bbox"]],
        "iscrowd": 0,
        "attributes": attributes,
        "source": annotation["source"],
    }
    score = annotation.get("score")
    if isinstance(score, int | float) and not isinstance(score, bool):
        entry["score"] = float(score)
    if annotation.get("proposed"):
        entry["proposed"] = True
    return entry


def mask_polygons(mask: np.ndarray) -> tuple[list[list[float]], bool]:
    """``(polygons, had holes)`` of a boolean mask: each polygon ``[x1, y1, x2, y2, …]`` in COCO's
    pixel-edge coordinates, at least three points, outer outlines only."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return [], False
    top, left = int(rows[0]), int(cols[0])
    crop = mask[top : int(rows[-1]) + 1, left : int(cols[-1]) + 1].astype(np.uint8)
    # Twice the size, and a frame of background so no outline touches the border.
    doubled = np.pad(np.kron(crop, np.ones((2, 2), dtype=np.uint8)), 1)
    contours, hierarchy = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return [], False
    polygons: list[list[float]] = []
    holes = False
    for contour, (_, _, _, parent) in zip(contours, hierarchy[0], strict=True):
        if parent >= 0:
            holes = True
            continue
        points = contour.reshape(-1, 2).astype(np.float64)
        if len(points) < 3:
            continue
        # Back to the image: undo the frame, then the doubling (a doubled pixel's centre is a
        # quarter pixel inside the original pixel's edge).
        points = (points - 1 + 0.5) / 2 + (left, top)
        polygons.append(points.reshape(-1).tolist())
    return polygons, holes


class CocoWriter:
    """Writes one COCO file as the export goes: images straight into the file, annotations into a
    spool file that is appended when the file is closed. Nothing grows in memory."""

    def __init__(self, path: Path, head: dict[str, Any]) -> None:
        self.images = 0
        self.annotations = 0
        self._out: IO[str] = path.open("w", encoding="utf-8")
        self._spool: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._out.write("{" + ",".join(f"{dumps(key)}:{dumps(value)}" for key, value in head.items()))
        self._out.write(',"images":[')

    def image(self, entry: dict[str, Any]) -> None:
        self._out.write(("," if self.images else "") + dumps(entry))
        self.images += 1

    def annotation(self, entry: dict[str, Any]) -> None:
        self._spool.write(("," if self.annotations else "") + dumps(entry))
        self.annotations += 1

    def close(self) -> None:
        try:
            self._out.write('],"annotations":[')
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, self._out)
            self._out.write("]}\n")
        finally:
            self._spool.close()
            self._out.close()

    def abort(self) -> None:
        self._spool.close()
        self._out.close()

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class CocoAnnotations:
    """The ``annotations`` entries of one export, as RLE or polygons, with what polygons cost."""

    def __init__(self, answer_texts: AnswerTexts, *, polygons: bool) -> None:
        self.answer_texts = answer_texts
        self.polygons = polygons
        self.kept_as_rle = 0
        self.holes_filled = 0

    def entry(self, annotation: dict[str, Any]) -> dict[str, Any]:
        segmentation: Any = annotation["rle"]
        if self.polygons:
            outlines, holes = mask_polygons(mask_decode(annotation["rle"]))
            if outlines:
                segmentation = outlines
                self.holes_filled += holes
            else:
                self.kept_as_rle += 1
        return annotation_entry(annotation, segmentation, self.answer_texts(annotation["answers"]))
