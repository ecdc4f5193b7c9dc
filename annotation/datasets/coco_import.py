"""COCO into a project: masks as pre-annotations on the items they belong to, or a zip of images
plus one COCO file that creates the items first. One run (``dataset_import_run``) serves the job
(``import_job``, kind ``import_dataset``), ``manage.py import_dataset``, the project page and the API.
It also takes YouTube-VIS files (``youtube_vis_import``): the job's ``format`` says which, and
without one the file says (``import_mapping.import_format``).

Everything is checked before anything is written (``coco_reading``), then written in one
transaction: a malformed file is refused with the first problems named, and nothing of it is
imported; a file that is well formed but does not fit the project entirely (unknown categories,
images without an item) is imported as far as it fits, and the report says what was left out and why.

Where the objects go:

- **Items.** In a zip, a COCO image whose ``file_name`` is a file of the zip (as it is, under
  ``images/`` as the platform's export writes it, or by its last path part when only one file has
  it) becomes a new item through ``media_create_image`` (checked and re-encoded like an upload). Any
  other image is matched to an item of the project by name: the item's original name equal to the
  ``file_name``, else to its last path part (``train/cat.jpg`` finds ``cat.jpg``), else the last path
  parts equal, else the stems as the export names files (``scan.bmp`` is exported as ``scan.png``);
  each step counts only when it finds exactly one item. The image's size must be the item's
  (masks are stored at the item's size): a difference refuses the file. Unmatched images, and their
  annotations, are skipped.
- **Labels.** A category goes to the project's mask or box label of the same name (case does not
  matter). Unknown categories are created as mask labels when asked (``create_labels``, with the
  category's ``color`` and its ``questions``; the per-item questions and classification labels the
  file names are created then too), else their annotations are skipped.
- **Answers.** An annotation's ``attributes`` ``{question text: answer}`` become answers to the
  label's questions of that text when the answer is one of the question's choices; an image's
  ``attributes`` answer the per-item questions (and ``"<label>: <question>"`` a classification
  label's). An item the import matched keeps the answers it has: only unanswered questions are filled.
  What could not be mapped is listed in the report.
- **Annotations** are written through ``annotation_create`` in the file's order (so the last one
  of an image is on top), ``proposed`` (pre-annotations awaiting a person) unless imported as
  accepted, source ``import``, ``source_detail`` ``{"file", "coco_id"}`` (and the ``score`` a model
  gave, when the file has one). An object given by its ``bbox`` alone is stored as the box's mask
  with the box in ``drawn``. Empty masks are skipped.

Source parameters (the job's ``params``, beside ``create_labels`` and ``proposed``)::

    {"source": "upload", "storage_name": "...", "label": "dataset.zip"}       a zip in storage
    {"source": "upload_json", "storage_name": "...", "label": "coco.json"}    a COCO file in storage
    {"source": "zip", "path": "/abs/dataset.zip"}                             server files (the command)
    {"source": "json", "path": "/abs/coco.json"}

A COCO file alone may have up to ``DATASET_IMPORT_MAX_JSON_BYTES`` (200 MB by default); inside a zip
it is also an entry of the zip and so bound by the per-file limit ``MAX_UPLOAD_BYTES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max

from annotation.annotations.services import annotation_create
from annotation.datasets.coco_reading import (
    CocoAnnotation,
    CocoFile,
    CocoImage,
    Problems,
    check_coco,
    parse_json,
    read_coco,
)
from annotation.datasets.import_mapping import (
    IMPORT_FORMATS,
    REPORTED,
    YOUTUBE_VIS,
    AnswerMap,
    CategoryLabels,
    Commit,
    ImportOptions,
    LabelAnswerMaps,
    Progress,
    UnmappedAnswers,
    import_format,
)
from annotation.datasets.import_sources import DatasetSource, ItemIndex, ZipFiles, open_dataset
from annotation.datasets.youtube_vis_import import vis_report_line, youtube_vis_import_run
from annotation.media_services import media_create_image
from annotation.media_sources import Entry
from annotation.models import Annotation, Label, MediaItem, Project, Question
from annotation.projects.services import label_create
from platform_core.tenancy import Tenant

# --- the report ------------------------------------------------------------------------------------


@dataclass
class ImportReport(UnmappedAnswers):
    file: str
    proposed: bool
    images_in_file: int = 0
    annotations_in_file: int = 0
    matched_items: int = 0
    created_items: int = 0
    annotations: int = 0
    item_answers: int = 0
    labels_created: list[str] = field(default_factory=list)
    questions_created: int = 0
    unknown_categories: list[str] = field(default_factory=list)
    skipped_images: list[dict[str, Any]] = field(default_factory=list)
    skipped_images_count: int = 0
    skipped_annotations: list[dict[str, Any]] = field(default_factory=list)
    skipped_annotations_count: int = 0

    def skip_image(self, image: CocoImage, reason: str) -> None:
        self.skipped_images_count += 1
        if len(self.skipped_images) < REPORTED:
            self.skipped_images.append({"image": image.id, "file_name": image.file_name, "reason": reason})

    def skip_annotation(self, annotation: CocoAnnotation, reason: str) -> None:
        self.skipped_annotations_count += 1
        if len(self.skipped_annotations) < REPORTED:
            self.skipped_annotations.append(
                {"annotation": annotation.id, "image": annotation.image_id, "reason": reason}
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": "coco",
            "proposed": self.proposed,
            "images_in_file": self.images_in_file,
            "annotations_in_file": self.annotations_in_file,
            "matched_items": self.matched_items,
            "created_items": self.created_items,
            "annotations": self.annotations,
            "item_answers": self.item_answers,
            "labels_created": self.labels_created,
            "questions_created": self.questions_created,
            "unknown_categories": self.unknown_categories,
            "skipped_images": self.skipped_images,
            "skipped_images_count": self.skipped_images_count,
            "skipped_annotations": self.skipped_annotations,
            "skipped_annotations_count": self.skipped_annotations_count,
            "unmapped_answers": self.unmapped_answers,
            "unmapped_answers_count": self.unmapped_answers_count,
        }


def report_line(report: dict[str, Any]) -> str:
    """The report in one line, as the command prints it."""
    if report.get("format") == YOUTUBE_VIS:
        return vis_report_line(report)
    kind = "pre-annotations" if report["proposed"] else "accepted objects"
    parts = [
        f"{report['annotations']} annotations imported as {kind}",
        f"{report['matched_items']} items matched",
        f"{report['created_items']} items created",
    ]
    if report["labels_created"]:
        parts.append(f"labels created: {', '.join(report['labels_created'])}")
    for key, what in (
        ("skipped_images_count", "images skipped"),
        ("skipped_annotations_count", "annotations skipped"),
        ("unmapped_answers_count", "answers not mapped"),
    ):
        if report[key]:
            parts.append(f"{report[key]} {what}")
    return f"{report['file']}: " + ", ".join(parts)


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Target:
    image: CocoImage
    item_id: int | None = None  # an item of the project
    entry: Entry | None = None  # or a file of the zip that becomes one


def dataset_import_run(
    *,
    tenant: Tenant,
    project: Project,
    params: dict[str, Any],
    actor: Any,
    commit: Commit | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Import the COCO file (or zip) ``params`` name into ``project`` (fetched through the tenancy
    door) as ``actor``, a manager or owner of ``tenant``; returns the report. A malformed file
    raises ImportRefused and imports nothing. ``commit(report)`` runs inside the transaction that
    writes (the job records itself done there); ``progress(done, total, message)`` is told of each
    step before the writing starts."""
    if project.organization_id != tenant.org.pk:
        raise ValueError("The project is not one of the tenant's.")
    options = ImportOptions.parse(params)
    format_ = params.get("format") or None
    if format_ is not None and format_ not in IMPORT_FORMATS:
        raise ValueError(f"Unknown dataset format {format_!r}.")
    with open_dataset(params) as source:
        root = None
        if format_ is None:
            root = parse_json(source.json_bytes, file=source.label)
            format_ = import_format(root)
        if format_ == YOUTUBE_VIS:
            root = None  # read again, whole and checked, by the YouTube-VIS reader
            return youtube_vis_import_run(
                tenant=tenant,
                project=project,
                source=source,
                options=options,
                actor=actor,
                commit=commit,
                progress=progress,
            )
        return _ImportRun(tenant, project, actor, options, source, progress).run(commit, root)


class _ImportRun:
    def __init__(
        self,
        tenant: Tenant,
        project: Project,
        actor: Any,
        options: ImportOptions,
        source: DatasetSource,
        progress: Progress | None,
    ) -> None:
        self.tenant = tenant
        self.project = project
        self.actor = actor
        self.options = options
        self.source = source
        self.progress = progress or (lambda done, total, message: None)
        self.report = ImportReport(file=source.label, proposed=options.proposed)
        self.labels = CategoryLabels(project, create_labels=options.create_labels)
        self._answer_map = LabelAnswerMaps()
        self.targets: dict[int, Target] = {}

    def run(self, commit: Commit | None, root: dict[str, Any] | None = None) -> dict[str, Any]:
        """Import the file; ``root`` is its JSON when the caller parsed it already."""
        self.progress(0, 3, f"Reading {self.source.label}")
        if root is None:
            coco = read_coco(self.source.json_bytes, file=self.source.label, create_labels=self.options.create_labels)
        else:
            coco = check_coco(root, file=self.source.label, create_labels=self.options.create_labels)
        self.source.json_bytes = b""  # parsed: let the bytes go
        self.report.images_in_file = len(coco.images)
        self.report.annotations_in_file = len(coco.annotations)
        self.progress(1, 3, f"{len(coco.images)} images and {len(coco.annotations)} annotations checked")
        self._plan_labels(coco)
        self._plan_images(coco)
        self.progress(2, 3, f"Writing {len(coco.annotations)} annotations")
        self._write(coco, commit)
        self.progress(3, 3, f"{self.report.annotations} annotations imported")
        return self.report.as_dict()

    # --- planning (reads only) ------------------------------------------------------------------

    def _plan_labels(self, coco: CocoFile) -> None:
        self.labels.plan(coco.categories.values())
        self.report.unknown_categories = self.labels.unknown

    def _plan_images(self, coco: CocoFile) -> None:
        problems = Problems()
        zip_files = ZipFiles(self.source.files) if self.source.files is not None else None
        index = ItemIndex(
            MediaItem.objects.filter(project=self.project, kind=MediaItem.Kind.IMAGE).values_list(
                "pk", "original_name", "width", "height", "answers"
            )
        )
        item_taken: dict[int, int] = {}
        entry_taken: dict[str, int] = {}
        creates = False
        for image in coco.images.values():
            entry = zip_files.find(image.file_name) if zip_files is not None else None
            if entry is not None:
                if entry.skip:
                    problems.add(image.path, f"its file “{entry.name}” in the zip cannot be imported: {entry.skip}")
                elif entry.name in entry_taken:
                    self.report.skip_image(image, f"the same file as image {entry_taken[entry.name]}")
                else:
                    entry_taken[entry.name] = image.id
                    self.targets[image.id] = Target(image, entry=entry)
                    creates = True
                continue
            item_id, why = index.find(image.file_name)
            if item_id is None:
                self.report.skip_image(image, why + (" (and the zip holds no such file)" if zip_files else ""))
                continue
            if item_id in item_taken:
                self.report.skip_image(image, f"its item is already matched by image {item_taken[item_id]}")
                continue
            _pk, name, width, height, _answers = index.rows[item_id]
            if (width, height) != (image.width, image.height):
                problems.add(
                    image.path,
                    f"“{image.file_name}” is {image.width}×{image.height} (width × height) in the file but the item "
                    f"“{name}” it matches is {width}×{height}: its masks do not fit the item",
                )
                continue
            item_taken[item_id] = image.id
            self.targets[image.id] = Target(image, item_id=item_id)
        if creates and not self.project.accepts("image"):
            problems.add(
                "images", f"the project “{self.project.name}” takes videos only: the zip's images cannot be added"
            )
        problems.refuse(self.source.label)

    # --- writing (one transaction) ----------------------------------------------------------------

    def _write(self, coco: CocoFile, commit: Commit | None) -> None:
        stored: list[str] = []
        try:
            with transaction.atomic():
                self._create_labels(coco)
                items = self._items(stored)
                self._annotations(coco, items)
                self._item_answers(items)
                if commit is not None:
                    commit(self.report.as_dict())
        except BaseException:
            # The rows are rolled back; the files of the items made meanwhile were already stored.
            for name in stored:
                default_storage.delete(name)
            raise

    def _create_labels(self, coco: CocoFile) -> None:
        if not self.options.create_labels:
            return
        self.labels.create(self.report)
        item_texts = {q.text.casefold() for q in self.project.questions.filter(label__isnull=True)}
        fresh = [spec for spec in coco.item_questions if spec.text.casefold() not in item_texts]
        self.labels.create_questions(fresh, None, self.report)
        by_name = {label.name.casefold(): label for label in self.project.labels.all()}
        for spec in coco.classification_labels:
            label = by_name.get(spec.name.casefold())
            if label is None:
                colour = self.labels.next_colour(spec.color)
                label = label_create(project=self.project, name=spec.name, color=colour, kind=Label.Kind.CLASSIFICATION)
                by_name[spec.name.casefold()] = label
                self.report.labels_created.append(label.name)
                self.labels.create_questions(spec.questions, label, self.report)

    def _items(self, stored: list[str]) -> dict[int, MediaItem]:
        """COCO image id -> the item its annotations go on (made now for a zip's files)."""
        problems = Problems()
        matched_ids = [target.item_id for target in self.targets.values() if target.item_id is not None]
        matched = MediaItem.objects.select_related("project").in_bulk(matched_ids)
        items: dict[int, MediaItem] = {}
        for image_id, target in self.targets.items():
            image = target.image
            if target.item_id is not None:
                items[image_id] = matched[target.item_id]
                self.report.matched_items += 1
                continue
            assert target.entry is not None  # noqa: S101 - a target is an item or a zip file
            try:
                item = media_create_image(
                    project=self.project, name=image.file_name, data=target.entry.read(), uploaded_by=self.actor
                )
            except ValidationError as exc:
                problems.add(image.path, f"its file “{target.entry.name}”: {' '.join(exc.messages)}")
                continue
            stored += [item.file.name, item.thumbnail.name]
            if (item.width, item.height) != (image.width, image.height):
                problems.add(
                    image.path,
                    f"“{image.file_name}” is {image.width}×{image.height} (width × height) in the file but its "
                    f"image in the zip is {item.width}×{item.height} (after EXIF orientation): its masks do not fit",
                )
                continue
            items[image_id] = item
            self.report.created_items += 1
        problems.refuse(self.source.label)
        return items

    def _annotations(self, coco: CocoFile, items: dict[int, MediaItem]) -> None:
        problems = Problems()
        # Each label with its questions, read once: annotation_create reads them through the label.
        labels = self.labels.object_labels()
        # Each new object goes on top of the item's others, in the file's order: the stacking is known
        # here, so annotation_create need not look for the top once per object.
        tops = dict(
            Annotation.objects.filter(media__in=[item.pk for item in items.values()])
            .order_by()
            .values("media_id")
            .annotate(top=Max("z_order"))
            .values_list("media_id", "top")
        )
        for annotation in coco.annotations:
            item = items.get(annotation.image_id)
            if item is None:
                self.report.skip_annotation(annotation, f"its image {annotation.image_id} was skipped")
                continue
            folded = self.labels.category_label.get(annotation.category_id)
            if folded is None or folded not in labels:
                self.report.skip_annotation(annotation, self.labels.reason(coco.categories[annotation.category_id]))
                continue
            if annotation.rle is None:
                self.report.skip_annotation(annotation, "its mask is empty: no pixel is set")
                continue
            label = labels[folded]
            answers = self._answer_map(label).map(annotation.attributes, f"annotation {annotation.id}", self.report)
            detail: dict[str, Any] = {"file": self.source.label, "coco_id": annotation.id}
            if annotation.score is not None:
                detail["score"] = annotation.score
            try:
                annotation_create(
                    tenant=self.tenant,
                    media=item,
                    label=label,
                    rle=annotation.rle,
                    author=self.actor,
                    drawn={"box": annotation.box} if annotation.box else None,
                    answers=answers,
                    source=Annotation.Source.IMPORT,
                    source_detail=detail,
                    z_order=tops.get(item.pk, -1) + 1,
                    proposed=self.options.proposed,
                )
            except ValidationError as exc:
                problems.add(f"annotations (id {annotation.id})", " ".join(exc.messages))
                continue
            tops[item.pk] = tops.get(item.pk, -1) + 1
            self.report.annotations += 1
        problems.refuse(self.source.label)

    def _item_answers(self, items: dict[int, MediaItem]) -> None:
        answer_map = AnswerMap(self._item_questions(), about="the project")
        for image_id, item in items.items():
            attributes = self.targets[image_id].image.attributes
            if not attributes:
                continue
            answers = answer_map.map(attributes, f"image {image_id}", self.report)
            current = dict(item.answers or {})
            for key, value in answers.items():
                if key in current and current[key] != value:
                    text = answer_map.texts.get(key, key)
                    reason = f"the item keeps its own answer “{current[key]}”"
                    self.report.unmapped(f"image {image_id}", text, value, reason)
            fresh = {key: value for key, value in answers.items() if key not in current}
            if fresh:
                MediaItem.objects.filter(pk=item.pk).update(answers={**current, **fresh})
                self.report.item_answers += len(fresh)

    def _item_questions(self) -> list[tuple[str, Question]]:
        texts: list[tuple[str, Question]] = []
        for question in self.project.questions.select_related("label"):
            if question.label_id is None:
                texts.append((question.text, question))
            elif question.label.kind == Label.Kind.CLASSIFICATION:
                texts.append((f"{question.label.name}: {question.text}", question))
        return texts
