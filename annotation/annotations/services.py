"""Writes on annotations: create, update and delete, each atomic, validated, versioned and published
to the item's channel group only after the transaction commits.

Rules every write applies:

- The item must be one the actor may work on. Callers fetch it with
  ``annotation.selectors.media_get`` (the annotator-scope rule: annotators reach only the items of
  their own tasks); the services check it again, answering a foreign item with the same 404. An
  annotator's item in a task that is submitted or accepted is frozen (as the task pages' save is);
  reviewers and above may still fix it.
- An annotation always has geometry: a non-empty mask, COCO compressed RLE at the item's size,
  checked by ``annotation.masks.rle_validate``; bbox and area are computed here, never taken from
  the client. Labels of kind *classification* describe a whole item: their answers live on the item
  (``MediaItem.answers``, saved by the task pages), so such a label cannot be given to an
  annotation. Mask and box labels can (a box is stored as the RLE of the box, with the corners in
  ``drawn``).
- The label belongs to the item's project (ValidationError on ``label``).
- ``answers`` are ``{question id: choice}`` for the label's own questions: an unknown question or a
  choice the question does not offer is refused; an empty answer is dropped. Required questions are
  not enforced here: an object is saved the moment it is drawn, before anyone could answer. When an
  annotation changes label without new answers, answers to the old label's questions are dropped.
- ``frame`` is null for an image and required for a video.
- ``version`` starts at 1 and grows by one with each update; an update or delete that names
  another version than the stored one raises ``VersionConflict`` carrying the stored annotation,
  and changes nothing. ``author`` records who last wrote the annotation.
- Pre-annotations: ``proposed`` marks an object a model made (an automatic pre-annotation job,
  a pipeline through the API) that awaits a person. ``annotation_accept`` takes it as it is;
  any change through ``annotation_update`` also clears it, because a fixed pre-annotation is the
  person's work from then on; deleting it is the plain ``annotation_delete``. Accepting is a write
  like any other: the version grows and the item's group hears of it.
- Events go to ``media_group(media.pk)`` after commit: ``annotation.saved`` with the annotation's
  payload, ``annotation.deleted`` with its id and last version; ``origin`` (the studio passes its
  socket's channel name) lets a page recognise its own echo.

Saving an item's first annotation changes nothing else: an item is done when an annotator saves it
as finished on the task pages (``annotation.tasks.services.item_save``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.http import Http404

from annotation.annotations.payloads import annotation_payload
from annotation.masks import rle_area, rle_bbox, rle_validate
from annotation.models import Annotation, Label, MediaItem, Task
from platform_core.models import Role
from platform_core.realtime import media_group, publish_after_commit
from platform_core.tenancy import Tenant

CHANGEABLE = frozenset({"label", "rle", "drawn", "answers", "z_order", "frame", "track", "source", "source_detail"})
FROZEN_STATES = (Task.State.SUBMITTED, Task.State.ACCEPTED)


class VersionConflict(Exception):
    """A write named a version that is no longer the stored one; ``current`` is the stored row."""

    def __init__(self, current: Annotation) -> None:
        super().__init__(
            f"Annotation {current.pk} has changed since you loaded it (it is now at version {current.version})."
        )
        self.current = current


def _check_item(tenant: Tenant, media: MediaItem, actor: Any) -> None:
    if media.project.organization_id != tenant.org.pk:
        raise Http404("No such media item.")
    if tenant.has_role(Role.REVIEWER):
        return
    task = media.task
    if task is None or task.assignee_id != getattr(actor, "pk", None):
        raise Http404("No such media item.")
    if task.state in FROZEN_STATES:
        raise ValidationError(
            f"This item's task is {task.get_state_display().lower()}; its annotations can no longer be changed.",
            code="state",
        )


def _check_label(media: MediaItem, label: Label) -> None:
    if not isinstance(label, Label) or label.project_id != media.project_id:
        raise ValidationError({"label": "The label belongs to another project: choose one of this item's labels."})
    if label.kind == Label.Kind.CLASSIFICATION:
        raise ValidationError(
            {
                "label": f"“{label.name}” is a classification label: answer it for the whole item; "
                "objects take a mask or box label."
            }
        )


def _check_rle(media: MediaItem, rle: Any) -> dict:
    try:
        return rle_validate(rle, height=media.height, width=media.width)
    except ValidationError as exc:
        raise ValidationError({"rle": exc.error_list}) from None


# Item, label and author come through the tenancy door and the checks above: full_clean need not
# query each one again to see that it exists (a smart prompt's save is on the click's critical path).
CHECKED_RELATIONS = ["media", "label", "author"]


def _check_frame(media: MediaItem, frame: Any) -> int | None:
    if media.kind == MediaItem.Kind.IMAGE:
        if frame is not None:
            raise ValidationError({"frame": "An image has no frames: leave the frame empty."})
        return None
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise ValidationError({"frame": "Give the frame of the video this mask is on (0 is the first)."})
    return frame


def _check_dict(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError({field: "Give an object ({…})."})
    return value


def _clean_answers(label: Label, answers: Any) -> dict[str, str]:
    if answers is None:
        return {}
    if not isinstance(answers, dict):
        raise ValidationError({"answers": "Give the answers as {question id: choice}."})
    # label.questions: prefetched by a caller that has read them already.
    questions = {str(question.pk): question for question in label.questions.all()}
    unknown = sorted(str(key) for key in answers if str(key) not in questions)
    if unknown:
        raise ValidationError(
            {"answers": f"No question {', '.join(unknown)} for the label “{label.name}”: answer its own questions."}
        )
    cleaned: dict[str, str] = {}
    for key, value in answers.items():
        question = questions[str(key)]
        if value is None or value == "":
            continue
        if not isinstance(value, str) or value not in question.choices:
            raise ValidationError({"answers": f"{question.text}: {value!r} is not one of the choices."})
        cleaned[str(key)] = value
    return cleaned


def _publish_saved(annotation: Annotation, origin: str) -> None:
    publish_after_commit(
        media_group(annotation.media_id),
        {"type": "annotation.saved", "annotation": annotation_payload(annotation), "origin": origin},
    )


def annotation_create(
    *,
    tenant: Tenant,
    media: MediaItem,
    label: Label,
    rle: Any,
    author: Any,
    frame: int | None = None,
    track: int | None = None,
    drawn: dict | None = None,
    answers: dict | None = None,
    source: str = Annotation.Source.MANUAL,
    source_detail: dict | None = None,
    z_order: int | None = None,
    proposed: bool = False,
    origin: str = "",
) -> Annotation:
    """A new object on ``media`` at version 1; without ``z_order`` it goes on top of the others; on a
    video, without ``track`` it starts a new track. ``proposed`` makes it a pre-annotation awaiting
    a person."""
    _check_item(tenant, media, author)
    _check_label(media, label)
    rle = _check_rle(media, rle)
    annotation = Annotation(
        media=media,
        label=label,
        frame=_check_frame(media, frame),
        track=track,
        rle=rle,
        bbox=rle_bbox(rle),
        area=rle_area(rle),
        drawn=_check_dict(drawn, "drawn"),
        answers=_clean_answers(label, answers),
        source=source,
        source_detail=_check_dict(source_detail, "source_detail"),
        proposed=bool(proposed),
        author=author,
        version=1,
    )
    with transaction.atomic():
        if z_order is None:
            top = Annotation.objects.filter(media=media).aggregate(top=Max("z_order"))["top"]
            z_order = 0 if top is None else top + 1
        annotation.z_order = z_order
        if media.kind == MediaItem.Kind.VIDEO and track is None:
            # On a video every object belongs to a track; without one it starts a new track.
            highest = Annotation.objects.filter(media=media).aggregate(top=Max("track"))["top"]
            annotation.track = 1 if highest is None else highest + 1
        annotation.full_clean(exclude=CHECKED_RELATIONS)
        annotation.save()
        _publish_saved(annotation, origin)
    return annotation


def _locked(annotation: Annotation, expected_version: Any) -> Annotation:
    if isinstance(expected_version, bool) or not isinstance(expected_version, int):
        raise ValidationError({"version": "Give the version you loaded, a whole number."})
    # No select_related here: PostgreSQL cannot lock the nullable side of an outer join (author).
    current = Annotation.objects.select_for_update().filter(pk=annotation.pk, media_id=annotation.media_id).first()
    if current is None:
        raise Http404("No such annotation.")
    if current.version != expected_version:
        raise VersionConflict(current)
    return current


def annotation_update(
    *,
    tenant: Tenant,
    annotation: Annotation,
    expected_version: int,
    author: Any,
    origin: str = "",
    **changes: Any,
) -> Annotation:
    """Apply ``changes`` (among label, rle, drawn, answers, z_order, frame, track, source,
    source_detail) to the annotation stored at ``expected_version``; returns it at the next version.
    A stale ``expected_version`` raises ``VersionConflict`` and changes nothing. A pre-annotation
    that is changed is no longer ``proposed``, and a video frame's mask a run wrote and a person
    redraws is no longer the run's: whoever fixed it made it theirs."""
    unknown = set(changes) - CHANGEABLE
    if unknown:
        raise TypeError(f"annotation_update() cannot change {', '.join(sorted(unknown))}.")
    media = annotation.media
    _check_item(tenant, media, author)
    with transaction.atomic():
        current = _locked(annotation, expected_version)
        current.media = media
        if "label" in changes:
            _check_label(media, changes["label"])
            relabelled = changes["label"].pk != current.label_id
            current.label = changes["label"]
            if relabelled and "answers" not in changes:
                # Questions belong to one label: the old label's answers mean nothing on the new one.
                current.answers = {}
        if "answers" in changes:
            current.answers = _clean_answers(current.label, changes["answers"])
        if "rle" in changes:
            current.rle = _check_rle(media, changes["rle"])
            current.bbox, current.area = rle_bbox(current.rle), rle_area(current.rle)
        if "frame" in changes:
            current.frame = _check_frame(media, changes["frame"])
        for field in ("drawn", "source_detail"):
            if field in changes:
                setattr(current, field, _check_dict(changes[field], field))
        if "rle" in changes and "source_detail" not in changes and "run" in (current.source_detail or {}):
            # A video frame a propagation run wrote, redrawn by a person: their mask now, which later
            # runs start from instead of overwriting (inference.video.runs).
            current.source_detail = {key: value for key, value in current.source_detail.items() if key != "run"}
        for field in ("z_order", "track", "source"):
            if field in changes:
                setattr(current, field, changes[field])
        current.proposed = False
        current.version += 1
        current.author = author
        current.full_clean(exclude=CHECKED_RELATIONS)
        current.save(
            update_fields=[
                "label",
                "answers",
                "rle",
                "bbox",
                "area",
                "frame",
                "track",
                "drawn",
                "source",
                "source_detail",
                "proposed",
                "z_order",
                "version",
                "author",
                "updated_at",
            ]
        )
        _publish_saved(current, origin)
    return current


def _not_proposed(annotation: Annotation) -> ValidationError:
    return ValidationError(
        f"Annotation {annotation.pk} is not a pre-annotation awaiting acceptance: there is nothing to accept.",
        code="not_proposed",
    )


def annotation_accept(
    *, tenant: Tenant, annotation: Annotation, expected_version: int, actor: Any, origin: str = ""
) -> Annotation:
    """Take the pre-annotation stored at ``expected_version`` as it is: no longer ``proposed``, at
    the next version, ``actor`` its author. A stale version raises ``VersionConflict``; an object
    that is not proposed (accepted or changed already) is a ValidationError ``not_proposed``."""
    media = annotation.media
    _check_item(tenant, media, actor)
    with transaction.atomic():
        current = _locked(annotation, expected_version)
        current.media = media
        if not current.proposed:
            raise _not_proposed(current)
        _accept(current, actor, origin)
    return current


def annotation_accept_all(*, tenant: Tenant, media: MediaItem, actor: Any, origin: str = "") -> list[Annotation]:
    """Accept every pre-annotation on ``media`` as it stands now (each at its next version);
    returns them, bottom to top. Objects someone changes meanwhile are no longer proposed and are
    left alone."""
    _check_item(tenant, media, actor)
    with transaction.atomic():
        # Locked, like a single accept: a concurrent change waits, then finds the next version.
        proposed = list(
            Annotation.objects.for_org(tenant.org)
            .select_for_update()
            .filter(media=media, proposed=True)
            .order_by("z_order", "id")
        )
        for annotation in proposed:
            annotation.media = media
            _accept(annotation, actor, origin)
    return proposed


def _accept(annotation: Annotation, actor: Any, origin: str) -> None:
    annotation.proposed = False
    annotation.version += 1
    annotation.author = actor
    annotation.save(update_fields=["proposed", "version", "author", "updated_at"])
    _publish_saved(annotation, origin)


def annotation_delete(
    *, tenant: Tenant, annotation: Annotation, expected_version: int, actor: Any, origin: str = ""
) -> None:
    """Remove the annotation stored at ``expected_version``; a stale one raises ``VersionConflict``."""
    media = annotation.media
    _check_item(tenant, media, actor)
    with transaction.atomic():
        current = _locked(annotation, expected_version)
        annotation_id, version = current.pk, current.version
        current.delete()
        publish_after_commit(
            media_group(media.pk),
            {"type": "annotation.deleted", "id": annotation_id, "version": version, "origin": origin},
        )
