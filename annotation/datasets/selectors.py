"""Reads for exports: a project's items and their annotations as a stream, its labels and questions.

Every read here starts from a ``Project`` the caller fetched through the tenancy door (a page or the
API: ``annotation.selectors.project_get``; the job runner: the job's organisation; the command:
the project id it was given), and reaches nothing outside that project.

Items and annotations are streamed with ``.iterator(chunk_size=…)`` as plain values (no model
instances): items in id order, in batches of ``ITEM_BATCH``; each batch's annotations in one query
ordered by item, then ``z_order`` (bottom first), then id. Memory holds one batch of items with
their annotations, whatever the size of the project. A batch's annotations are read to the end
before its items are handed on, so the writes callers make between items (the job's progress)
never meet an open annotation cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform

from annotation.datasets.options import ACCEPTED, ExportOptions
from annotation.models import Annotation, Label, MediaItem, Project, Question, Task

ITEM_BATCH = 200
ANNOTATION_CHUNK = 2000

ITEM_FIELDS = ("id", "kind", "original_name", "file", "width", "height", "answers")
ANNOTATION_FIELDS = ("id", "media_id", "label_id", "rle", "bbox", "area", "answers", "source", "proposed")


@dataclass
class ExportItem:
    """One item as the exporters see it: its stored values and its annotations (bottom first)."""

    id: int
    kind: str
    original_name: str
    file: str
    width: int
    height: int
    answers: dict[str, Any]
    annotations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_video(self) -> bool:
        return self.kind == MediaItem.Kind.VIDEO


def export_items(project: Project, options: ExportOptions) -> QuerySet[MediaItem]:
    """The items an export takes: all of the project's, or only those of accepted tasks; with a
    split, only those of the split (its subset)."""
    items = MediaItem.objects.filter(project=project)
    if options.only == ACCEPTED:
        items = items.filter(task__state=Task.State.ACCEPTED)
    if options.split is not None:
        # One filter() call: the split and the subset are conditions on the same membership row.
        membership = {"split_memberships__split_id": options.split}
        if options.subset:
            membership["split_memberships__subset"] = options.subset
        items = items.filter(**membership)
    return items.order_by("id")


def export_annotations(project: Project, options: ExportOptions) -> QuerySet[Annotation]:
    annotations = Annotation.objects.filter(media__project=project)
    if not options.include_proposed:
        annotations = annotations.filter(proposed=False)
    return annotations


def proposed_left_out(project: Project, options: ExportOptions) -> int:
    """Pre-annotations awaiting a person on the exported images that this export leaves out."""
    if options.include_proposed:
        return 0
    items = export_items(project, options).filter(kind=MediaItem.Kind.IMAGE)
    return Annotation.objects.filter(media__in=items, proposed=True).count()


def export_labels(project: Project) -> list[Label]:
    """The labels objects carry (mask and box; classification labels describe whole items), in
    the project's label order: COCO's categories and the mask PNGs' classes."""
    return list(project.labels.exclude(kind=Label.Kind.CLASSIFICATION).order_by("order", "name", "id"))


def classification_labels(project: Project) -> list[Label]:
    return list(project.labels.filter(kind=Label.Kind.CLASSIFICATION).order_by("order", "name", "id"))


def export_questions(project: Project) -> list[Question]:
    """Every question of the project, per-item ones (no label) and per-object ones, in order."""
    return list(project.questions.order_by("label_id", "order", "id"))


def export_stream(project: Project, options: ExportOptions, *, batch: int = ITEM_BATCH) -> Iterator[ExportItem]:
    """Each exported item with its annotations (none for videos, which exporters skip)."""
    items = export_items(project, options).values(*ITEM_FIELDS).iterator(chunk_size=batch)
    while chunk := list(islice(items, batch)):
        exported = [ExportItem(**values) for values in chunk]
        by_id = {item.id: item for item in exported if not item.is_video}
        if by_id:
            annotations = (
                export_annotations(project, options)
                .filter(media_id__in=list(by_id))
                # The score a model gave its mask, without reading the prompts kept beside it.
                .annotate(score=KeyTransform("score", "source_detail"))
                .order_by("media_id", "z_order", "id")
                .values(*ANNOTATION_FIELDS, "score")
                .iterator(chunk_size=ANNOTATION_CHUNK)
            )
            for annotation in annotations:
                by_id[annotation["media_id"]].annotations.append(annotation)
        for item in exported:
            yield item
            item.annotations = []  # done with: let them go before the next item
