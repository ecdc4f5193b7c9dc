"""What an evaluation compares: two sets of a project's annotations (``AnnotationSet``), one the
prediction and one the ground truth (``Comparison``), and the rows of each set's objects. The image
figures (``evaluation``) and the video figures (``video_scores``) read the sets the same way.

An ``AnnotationSet`` is a project and a selection of its objects:

- ``objects``: the objects people stand behind, every annotation that is not ``proposed`` (drawn by
  hand or with the smart tool, imported, or a pre-annotation a person accepted or fixed);
- ``preannotations``: what a model made without a person's prompt: every ``proposed`` object, and
  every object of source ``model`` not drawn with the studio's smart tool (``drawn.tool ==
  "smart"``, whose prompts a person gave), i.e. the pre-annotations people have accepted since
  (and, on videos, the frames a propagation run made). No history is kept, so a pre-annotation a
  person fixed is seen as fixed, and an accepted or fixed one is in both sets: it counts as a hit.
  A pre-annotation a person deleted is gone from both. The scores are therefore an upper bound of
  the model's quality where people fixed rather than redrew.

A ``Comparison`` takes a prediction set and a ground-truth set (always ``objects``): of another
project (items matched by their original file name), or of the same project (the same items; for
``preannotations``, only the items people have finished: on an unfinished item an untouched
proposal says nothing yet).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.fields.json import KeyTransform

from annotation.models import Annotation, Project

OBJECTS = "objects"
PREANNOTATIONS = "preannotations"
SELECTIONS = {OBJECTS: "objects", PREANNOTATIONS: "pre-annotations"}
ANNOTATION_CHUNK = 2000
SKIP_NAME = "file name not unique"


@dataclass(frozen=True)
class AnnotationSet:
    project: Project
    selection: str = OBJECTS

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValidationError(f"Unknown selection {self.selection!r}: use {' or '.join(SELECTIONS)}.")

    def describe(self) -> str:
        return f"{SELECTIONS[self.selection]} of {self.project.name}"


@dataclass(frozen=True)
class Comparison:
    prediction: AnnotationSet
    truth: AnnotationSet

    def __post_init__(self) -> None:
        if self.prediction.project.organization_id != self.truth.project.organization_id:
            raise ValueError("Both sets must belong to one organisation.")
        if self.truth.selection != OBJECTS:
            raise ValidationError("The ground truth is people's objects: choose 'objects' for it.")

    @property
    def same_project(self) -> bool:
        return self.prediction.project.pk == self.truth.project.pk

    @property
    def finished_only(self) -> bool:
        return self.prediction.selection == PREANNOTATIONS

    def describe(self) -> str:
        return f"{self.prediction.describe()} against {self.truth.describe()}"


def selected_rows(selection: AnnotationSet, item_ids: Sequence[int], *fields: str) -> Iterator[dict[str, Any]]:
    """The set's objects on those items as ``values(*fields)`` rows (``score``, the model's score
    from ``source_detail``, may be among the fields), by item, bottom first."""
    annotations = Annotation.objects.filter(media_id__in=list(item_ids), media__project=selection.project)
    if selection.selection == OBJECTS:
        annotations = annotations.filter(proposed=False)
    else:
        annotations = annotations.filter(Q(proposed=True) | Q(source=Annotation.Source.MODEL))
    rows = (
        annotations.annotate(score=KeyTransform("score", "source_detail"), tool=KeyTransform("tool", "drawn"))
        .order_by("media_id", "z_order", "id")
        .values(*fields, "proposed", "tool")
        .iterator(chunk_size=ANNOTATION_CHUNK)
    )
    for row in rows:
        if selection.selection == PREANNOTATIONS and not row["proposed"] and row["tool"] == "smart":
            continue  # a person prompted the model for it: people's work
        yield row
