"""Automatic pre-annotation: a model run over a project's items (all of them, or a chosen few) as a
background job, its masks saved as pre-annotations awaiting a person.

Two methods:

- ``automatic``: SAM 2's ``SAM2AutomaticMaskGenerator`` on the model the loader holds (a grid of
  point prompts, filtered by predicted quality and stability, duplicates suppressed). Its masks,
  best predicted quality first, empty ones dropped, at most ``max_objects`` per item, land on ONE
  chosen mask label. Needs a SAM 2 checkpoint: the classical fallback has no notion of "every
  object in the image".
- ``boxes``: each object of a *source* label on the item gives its box as a prompt (the box the
  person drew, ``drawn["box"]``, when there is one, else the mask's bounding box), segmented through
  the same ``inference.segmentation`` service the studio uses (so the item's embedding is computed
  once and kept in the embedding cache); the best mask lands on the *target* mask label, e.g. to
  turn box annotations into masks. The fallback ``opencv`` is allowed here: GrabCut seeded from a
  rectangle is what GrabCut was made for.

Every mask is saved through ``annotation_create`` with ``proposed=True``, source ``model`` and
``source_detail`` = ``{"model", "method", "job", "score", "prompts": [the prompt that made it],
"centroid": [x, y]}`` (plus ``"stability"`` for automatic masks, ``"from"``, the source object's id,
for boxes). The centroid is the mean of the mask's pixel centres in original-image pixels, for the
overlay's keypoint; ``bbox`` is the annotation's own.

Items that already hold proposed objects of the same method on the target label are skipped,
unless ``replace`` is asked: then those objects are deleted in the same transaction that saves the
new ones. Videos are skipped (pre-annotation segments images).

Starting is for owners and managers (``preannotation_start``, which checks every input against the
requesting member's organisation and says what is wrong per field). The job runs as the member who
started it: the runner resolves their membership again and stops if they are no longer a manager.
Each item's objects commit together with the job's report (a run that lost its job, cancelled or
superseded, commits nothing), so a retry finds items done by an earlier run of the same job and
does not repeat them. The report lists per item the objects made, or why it was skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404

from annotation.media_services import media_read_bytes
from annotation.models import Annotation, Label, MediaItem, Project
from inference import registry
from inference.prompts import BadImage, PromptError
from platform_core.jobs import JobCancelled, JobProgress, job_manager_tenant, job_runner, job_start
from platform_core.models import Job
from platform_core.tenancy import Tenant

logger = logging.getLogger(__name__)

KIND = "preannotate"
AUTOMATIC = "automatic"
BOXES = "boxes"
METHODS = {
    AUTOMATIC: "Automatic: every object SAM 2 finds",
    BOXES: "Boxes: masks from the boxes of another label's objects",
}
MAX_ITEMS = 10_000  # ids in one selection
REPORTED_ITEMS = 1000  # rows the report lists (it counts them all)
POINTS_PER_BATCH = 64


@dataclass(frozen=True)
class Option:
    kind: type
    minimum: float
    maximum: float
    default: float
    help: str


# The automatic generator's knobs, with defaults chosen for speed (a 16 × 16 grid instead of SAM's
# 32 × 32) and fewer, surer masks (stability 0.92) over completeness.
OPTIONS: dict[str, Option] = {
    "points_per_side": Option(int, 1, 64, 16, "Grid of point prompts per image side (its square is the prompts)."),
    "pred_iou_thresh": Option(float, 0.0, 1.0, 0.8, "Keep masks whose predicted quality is at least this."),
    "stability_score_thresh": Option(float, 0.0, 1.0, 0.92, "Keep masks at least this stable (0: keep all)."),
    "box_nms_thresh": Option(float, 0.0, 1.0, 0.7, "Boxes overlapping more than this are duplicates (1: keep all)."),
    "min_mask_region_area": Option(int, 0, 100_000, 0, "Remove specks and holes smaller than this (pixels)."),
    "max_objects": Option(int, 1, 500, 50, "At most this many objects per item, best first."),
}


def default_options() -> dict[str, Any]:
    return {name: option.kind(option.default) for name, option in OPTIONS.items()}


def model_choices(method: str | None = None) -> list[dict[str, Any]]:
    """The models a pre-annotation may use: the available SAM 2 models, and for the boxes method
    (or when no method is given, marked ``boxes_only``) the fallback."""
    choices = []
    for choice in registry.choices():
        if choice["fallback"]:
            if method == AUTOMATIC:
                continue
            choice = {**choice, "boxes_only": True}
        choices.append(choice)
    return choices


# --- starting ----------------------------------------------------------------------------------


def _whole(value: Any, field_name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() or len(str(value)) > 18:
        raise ValidationError({field_name: f"Give the {what} as its id, a whole number."})
    return int(value)


def _project_label(tenant: Tenant, project: Project, value: Any, field_name: str) -> Label:
    label_id = _whole(value, field_name, "label")
    label = Label.objects.for_org(tenant.org).filter(project=project, pk=label_id).first()
    if label is None:
        # The same words for another project's label, another organisation's and none at all.
        raise ValidationError({field_name: f"No label with id {label_id} in this project."})
    return label


def _check_model(model: Any, method: str) -> str:
    available = registry.available_keys()
    allowed = available + ([registry.FALLBACK_KEY] if method == BOXES else [])
    if isinstance(model, str) and model in allowed:
        return model
    shown = repr(model)[:40]
    if method == AUTOMATIC and model == registry.FALLBACK_KEY:
        text = "The classical fallback cannot find objects on its own: automatic pre-annotation needs a SAM 2 model"
    elif isinstance(model, str) and model in registry.MODELS:
        text = f"Model {shown} has no checkpoint on this server"
    else:
        text = f"Unknown model {shown}"
    choose = f"use one of {', '.join(allowed)}" if allowed else "no SAM 2 checkpoint is installed"
    raise ValidationError({"model": f"{text}: {choose}."})


def _check_options(options: Any) -> dict[str, Any]:
    if options is None:
        return default_options()
    if not isinstance(options, dict):
        raise ValidationError({"options": "Give the options as an object ({name: value})."})
    unknown = sorted(str(name) for name in options if name not in OPTIONS)
    if unknown:
        raise ValidationError({"options": f"Unknown option {', '.join(unknown)}: use {', '.join(OPTIONS)}."})
    cleaned = default_options()
    for name, value in options.items():
        option = OPTIONS[name]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise ValidationError({"options": f"{name} must be a number."})
        if option.kind is int and value != int(value):
            raise ValidationError({"options": f"{name} must be a whole number."})
        if not option.minimum <= value <= option.maximum:
            raise ValidationError({"options": f"{name} must be between {option.minimum} and {option.maximum}."})
        cleaned[name] = option.kind(value)
    return cleaned


def _check_items(tenant: Tenant, project: Project, items: Any) -> list[int] | None:
    from annotation.selectors import media_list

    if items is None:
        if not media_list(tenant, project).exists():
            raise ValidationError({"items": "The project has no items to pre-annotate yet."})
        return None
    if not isinstance(items, list | tuple):
        raise ValidationError({"items": "Give the items as a list of ids."})
    if not items:
        raise ValidationError({"items": "Select at least one item."})
    if len(items) > MAX_ITEMS:
        raise ValidationError({"items": f"At most {MAX_ITEMS} items at once: pre-annotate the whole project instead."})
    ids = sorted({_whole(value, "items", "item") for value in items})
    found = set(media_list(tenant, project).filter(pk__in=ids).values_list("pk", flat=True))
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        raise ValidationError({"items": f"No item {shown} in this project."})
    return ids


def preannotation_start(
    *,
    tenant: Tenant,
    project: Project,
    model: Any,
    method: Any,
    label: Any,
    actor: Any,
    source_label: Any = None,
    items: Any = None,
    replace: bool = False,
    options: Any = None,
) -> Job:
    """Check the inputs and start a pre-annotation job on ``project`` (fetched through the tenancy
    door): ``label`` is the target label's id, ``source_label`` the boxes method's source label
    id, ``items`` a list of media ids of the project (None: the whole project), ``options`` the
    automatic generator's (see ``OPTIONS``). ValidationError per field for a bad input;
    PermissionDenied below manager."""
    if project.organization_id != tenant.org.pk:
        raise Http404("No such project.")
    if not tenant.can_manage:
        raise PermissionDenied("Only managers and owners start pre-annotation jobs.")
    if method not in METHODS:
        raise ValidationError({"method": f"Unknown method {repr(method)[:40]}: use {' or '.join(METHODS)}."})
    model = _check_model(model, method)
    target = _project_label(tenant, project, label, "label")
    if target.kind != Label.Kind.MASK:
        kind = target.get_kind_display().lower()
        raise ValidationError({"label": f"“{target.name}” is a {kind} label: the new masks need a mask label."})
    source = None
    if method == BOXES:
        if source_label in (None, ""):
            raise ValidationError({"source_label": "Choose the label whose objects' boxes become the prompts."})
        source = _project_label(tenant, project, source_label, "source_label")
        if source.kind == Label.Kind.CLASSIFICATION:
            raise ValidationError({"source_label": f"“{source.name}” is a classification label: it has no objects."})
        if source.pk == target.pk:
            raise ValidationError({"source_label": "Choose another label than the one the new masks go to."})
    params = {
        "model": model,
        "method": method,
        "label": target.pk,
        "source_label": source.pk if source else None,
        "items": _check_items(tenant, project, items),
        "replace": bool(replace),
        "options": _check_options(options) if method == AUTOMATIC else {},
    }
    return job_start(organization=tenant.org, kind=KIND, params=params, created_by=actor, project=project)


# --- running -----------------------------------------------------------------------------------


@dataclass
class Proposal:
    mask: np.ndarray
    detail: dict[str, Any]


@dataclass
class Report:
    model: str
    method: str
    label: str
    total: int = 0
    annotated: int = 0
    objects: int = 0
    replaced: int = 0
    skipped_count: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, media: MediaItem, objects: int = 0, skipped: str = "") -> None:
        if skipped:
            self.skipped_count += 1
        elif objects:
            self.annotated += 1
        self.objects += objects
        if len(self.rows) < REPORTED_ITEMS:
            self.rows.append({"item": media.pk, "name": media.original_name, "objects": objects, "skipped": skipped})

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "method": self.method,
            "label": self.label,
            "items": self.total,
            "annotated": self.annotated,
            "objects": self.objects,
            "replaced": self.replaced,
            "skipped_count": self.skipped_count,
            "per_item": self.rows,
        }


def _rounded(value: float) -> float:
    return round(float(value), 4)


def centroid(mask: np.ndarray) -> list[float]:
    """The mean of the mask's pixel centres, ``[x, y]`` in original-image pixels."""
    rows, columns = np.nonzero(mask)
    return [round(float(columns.mean()) + 0.5, 2), round(float(rows.mean()) + 0.5, 2)]


def prompt_box(annotation: Annotation, *, width: int, height: int) -> list[float] | None:
    """The box prompt an object gives: the box drawn (corners in any order), else its mask's
    bounding box, clipped to the image; None when nothing of it is inside."""
    drawn = annotation.drawn.get("box") if isinstance(annotation.drawn, dict) else None
    if (
        isinstance(drawn, list)
        and len(drawn) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in drawn)
    ):
        x0, x1 = sorted((float(drawn[0]), float(drawn[2])))
        y0, y1 = sorted((float(drawn[1]), float(drawn[3])))
    else:
        x, y, w, h = (float(v) for v in annotation.bbox or [0, 0, 0, 0])
        x0, y0, x1, y1 = x, y, x + w, y + h
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if not (x0 < x1 and y0 < y1):
        return None
    return [x0, y0, x1, y1]


def automatic_proposals(generator: Any, loaded: Any, rgb: np.ndarray, max_objects: int) -> list[Proposal]:
    """What ``generator.generate`` finds on ``rgb``: best predicted quality first (ties in the
    generator's order), empty masks dropped, at most ``max_objects``."""
    with loaded.autocast():
        records = generator.generate(rgb)
    loaded.synchronize()
    ranked = sorted(
        (record for record in records if record["segmentation"].any()),
        key=lambda record: -float(record["predicted_iou"]),
    )
    proposals = []
    for record in ranked[:max_objects]:
        points = [[round(float(x), 2), round(float(y), 2), 1] for x, y in record["point_coords"]]
        detail = {
            "score": _rounded(record["predicted_iou"]),
            "stability": _rounded(record["stability_score"]),
            "prompts": [{"points": points, "box": None}],
        }
        proposals.append(Proposal(mask=np.asarray(record["segmentation"], dtype=bool), detail=detail))
    return proposals


class Preannotator:
    """One run of a pre-annotation job: works out each item's proposals and saves them."""

    def __init__(self, job: Job, progress: JobProgress, *, service: Any) -> None:
        self.job = job
        self.progress = progress
        self.service = service
        self.params = job.params
        self.method = self.params["method"]
        self.model = self.params["model"]
        self.project = job.project
        if self.project is None or self.project.organization_id != job.organization_id:
            raise ValueError("The job names no project of its organisation.")
        self.tenant = job_manager_tenant(job)
        self.label = self._label(self.params["label"], "target")
        self.source_label = self._label(self.params["source_label"], "source") if self.method == BOXES else None
        self.options = {**default_options(), **(self.params.get("options") or {})}
        self.report = Report(model=self.model, method=self.method, label=self.label.name)
        self._generator: Any = None
        self._loaded: Any = None

    def _label(self, label_id: int, role: str) -> Label:
        label = Label.objects.for_org(self.tenant.org).filter(project=self.project, pk=label_id).first()
        if label is None:
            raise ValueError(f"The {role} label chosen for this job has been deleted.")
        return label

    def items(self) -> Iterable[MediaItem]:
        from annotation.selectors import media_list

        items = media_list(self.tenant, self.project)
        if self.params.get("items") is not None:
            items = items.filter(pk__in=self.params["items"])
        return items.order_by("id")

    def run(self) -> dict[str, Any]:
        items = list(self.items())
        self.report.total = len(items)
        self.progress.update(done=0, total=len(items), message=f"{len(items)} items to pre-annotate")
        for index, media in enumerate(items, start=1):
            objects, skipped = self.one(media)
            self.report.add(media, objects, skipped)
            self._commit_report()
            note = skipped or f"{objects} object{'s' if objects != 1 else ''}"
            self.progress.update(done=index, total=len(items), message=f"{media.original_name}: {note}")
        return self.report.as_dict()

    def _commit_report(self) -> None:
        # The job page shows the report as it grows; only the run that owns the job writes it.
        owned = Job.objects.filter(pk=self.job.pk, state=Job.State.RUNNING, attempts=self.job.attempts)
        if not owned.update(report=self.report.as_dict()):
            raise JobCancelled(f"Job {self.job.pk} was cancelled or taken over by a newer run.")

    def _proposed_here(self, media: MediaItem) -> Any:
        return Annotation.objects.for_org(self.tenant.org).filter(
            media=media,
            label=self.label,
            proposed=True,
            source=Annotation.Source.MODEL,
            source_detail__method=self.method,
        )

    def _made_by_this_job(self, media: MediaItem) -> int:
        return (
            Annotation.objects.for_org(self.tenant.org)
            .filter(media=media, source=Annotation.Source.MODEL, source_detail__job=self.job.pk)
            .filter(source_detail__method=self.method)
            .count()
        )

    def one(self, media: MediaItem) -> tuple[int, str]:
        """Pre-annotate one item: ``(objects made, "")`` or ``(0, why it was skipped)``."""
        if media.kind != MediaItem.Kind.IMAGE:
            return 0, "a video: pre-annotation works on images"
        # Done by an earlier run of this job (a retry): counted, not repeated, whether people have
        # accepted those objects since or not.
        done = self._made_by_this_job(media)
        if done:
            return done, ""
        replaced = list(self._proposed_here(media).values_list("pk", flat=True))
        if replaced and not self.params.get("replace"):
            objects = f"{len(replaced)} proposed object{'s' if len(replaced) != 1 else ''}"
            return 0, f"holds {objects} of an earlier {self.method} pre-annotation (replace was not asked)"
        try:
            if self.method == AUTOMATIC:
                proposals = self._automatic(media)
            else:
                proposals, why = self._boxes(media)
                if why:
                    return 0, why
        except (BadImage, PromptError) as exc:
            return 0, exc.message
        if not proposals:
            return 0, "the model found no object"
        self._save(media, proposals, replaced)
        self.report.replaced += len(replaced)
        return len(proposals), ""

    def _automatic(self, media: MediaItem) -> list[Proposal]:
        from inference.results import load_rgb

        if self._generator is None:
            from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

            self._loaded = self.service.loader.get(self.model)
            options = self.options
            self._generator = SAM2AutomaticMaskGenerator(
                self._loaded.sam,
                points_per_side=options["points_per_side"],
                points_per_batch=POINTS_PER_BATCH,
                pred_iou_thresh=options["pred_iou_thresh"],
                stability_score_thresh=options["stability_score_thresh"],
                box_nms_thresh=options["box_nms_thresh"],
                min_mask_region_area=options["min_mask_region_area"],
            )
        rgb = load_rgb(media_read_bytes(media))
        return automatic_proposals(self._generator, self._loaded, rgb, self.options["max_objects"])

    def _boxes(self, media: MediaItem) -> tuple[list[Proposal], str]:
        sources = list(
            Annotation.objects.for_org(self.tenant.org)
            .filter(media=media, label=self.source_label, frame__isnull=True)
            .order_by("z_order", "id")
        )
        if not sources:
            return [], f"no “{self.source_label.name}” objects to take boxes from"
        proposals = []
        for source in sources:
            box = prompt_box(source, width=media.width, height=media.height)
            if box is None:
                continue
            result = self.service.segment(
                model=self.model,
                media_key=media.pk,
                image_version=media.file.name,
                image=lambda: media_read_bytes(media),
                box=box,
            )
            if not result.mask.any():
                continue
            detail = {"score": _rounded(result.score), "from": source.pk, "prompts": [{"points": None, "box": box}]}
            proposals.append(Proposal(mask=result.mask, detail=detail))
        return proposals, ""

    def _save(self, media: MediaItem, proposals: list[Proposal], replaced: list[int]) -> None:
        from annotation.annotations.services import annotation_create
        from annotation.masks import mask_encode

        with transaction.atomic():
            # First: a run that no longer owns its job stops here and commits nothing.
            self._commit_report()
            if replaced:
                doomed = Annotation.objects.for_org(self.tenant.org).filter(pk__in=replaced, media=media)
                for annotation in doomed:
                    annotation.media = media
                    _delete(self.tenant, annotation, self.job.created_by)
            for proposal in proposals:
                annotation_create(
                    tenant=self.tenant,
                    media=media,
                    label=self.label,
                    rle=mask_encode(proposal.mask),
                    author=self.job.created_by,
                    source=Annotation.Source.MODEL,
                    source_detail={
                        "model": self.model,
                        "method": self.method,
                        "job": self.job.pk,
                        **proposal.detail,
                        "centroid": centroid(proposal.mask),
                    },
                    proposed=True,
                )


def _delete(tenant: Tenant, annotation: Annotation, actor: Any) -> None:
    from annotation.annotations.services import annotation_delete

    annotation_delete(tenant=tenant, annotation=annotation, expected_version=annotation.version, actor=actor)


def get_service() -> Any:
    """The process's segmentation service (models, embedding cache), shared with the studio."""
    from inference.segmentation import get_service as process_service

    return process_service()


@job_runner(KIND, queue="gpu", label="Pre-annotation")
def run_preannotate(job: Job, progress: JobProgress) -> dict[str, Any]:
    return Preannotator(job, progress, service=get_service()).run()
