"""COCO into a project: masks as pre-annotations on the items they belong to, or a zip of images
plus one COCO file that creates the items first. One run (``dataset_import_run``) serves the job
(``import_job``, kind ``import_dataset``), ``manage.py import_dataset``, the project page and the API.

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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max

from annotation.annotations.services import annotation_create
from annotation.datasets.coco_reading import (
    CocoAnnotation,
    CocoCategory,
    CocoFile,
    CocoImage,
    Problems,
    QuestionSpec,
    read_coco,
)
from annotation.datasets.import_sources import DatasetSource, ItemIndex, ZipFiles, open_dataset
from annotation.media_services import media_create_image
from annotation.media_sources import Entry
from annotation.models import Annotation, Label, MediaItem, Project, Question
from annotation.projects.services import label_create, question_create
from platform_core.tenancy import Tenant

REPORTED = 1000  # rows each list of the report holds (it counts them all)
# Colours for created labels whose category has none (matplotlib's ten).
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

Progress = Callable[[int, int, str], None]
Commit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class ImportOptions:
    """``create_labels``: make labels for unknown categories. ``proposed``: the objects await a
    person (pre-annotations); False imports them as accepted objects."""

    create_labels: bool = False
    proposed: bool = True

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ImportOptions:
        return cls(create_labels=data.get("create_labels") is True, proposed=data.get("proposed", True) is not False)


# --- the report ------------------------------------------------------------------------------------


@dataclass
class ImportReport:
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
    unmapped_answers: list[dict[str, Any]] = field(default_factory=list)
    unmapped_answers_count: int = 0

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

    def unmapped(self, where: str, question: Any, answer: Any, reason: str) -> None:
        self.unmapped_answers_count += 1
        if len(self.unmapped_answers) < REPORTED:
            self.unmapped_answers.append(
                {"where": where, "question": str(question)[:200], "answer": str(answer)[:100], "reason": reason}
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


# --- answers ---------------------------------------------------------------------------------------


class AnswerMap:
    """Turns ``{question text: answer}`` into ``{question id: choice}`` for some questions."""

    def __init__(self, questions: Iterable[tuple[str, Question]], about: str) -> None:
        self.about = about
        self.exact: dict[str, Question] = {}
        self.folded: dict[str, Question] = {}
        self.texts: dict[str, str] = {}  # question id -> the text the file uses for it
        for text, question in questions:
            self.texts.setdefault(str(question.pk), text)
            self.exact.setdefault(text, question)
            self.folded.setdefault(text.casefold(), question)

    def map(self, attributes: dict[str, Any], where: str, report: ImportReport) -> dict[str, str]:
        answers: dict[str, str] = {}
        for text, value in attributes.items():
            question = self.exact.get(text) or self.folded.get(str(text).casefold())
            if question is None:
                report.unmapped(where, text, value, f"{self.about} has no question of this text")
                continue
            choice = _choice(question, value)
            if choice is None:
                report.unmapped(where, text, value, f"not one of the choices of “{question.text}”")
                continue
            answers[str(question.pk)] = choice
        return answers


def _choice(question: Question, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if value in question.choices:
        return value
    folded = [choice for choice in question.choices if choice.casefold() == value.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


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
    with open_dataset(params) as source:
        run = _ImportRun(tenant, project, actor, options, source, progress)
        return run.run(commit)


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
        self.category_label: dict[int, str] = {}  # category id -> folded label name (existing or to create)
        self.classification: set[str] = set()  # folded names of the project's classification labels
        self.answer_maps: dict[int, AnswerMap] = {}
        self.to_create: dict[str, CocoCategory] = {}
        self.targets: dict[int, Target] = {}

    def run(self, commit: Commit | None) -> dict[str, Any]:
        self.progress(0, 3, f"Reading {self.source.label}")
        coco = read_coco(self.source.json_bytes, file=self.source.label, create_labels=self.options.create_labels)
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
        labels = {label.name.casefold(): label for label in self.project.labels.all()}
        unknown: dict[str, str] = {}
        for category in coco.categories.values():
            folded = category.name.casefold()
            label = labels.get(folded)
            if label is not None and label.kind != Label.Kind.CLASSIFICATION:
                self.category_label[category.id] = folded
            elif label is not None:
                continue  # its annotations are skipped, with the reason
            elif self.options.create_labels:
                self.to_create.setdefault(folded, category)
                self.category_label[category.id] = folded
            else:
                unknown.setdefault(folded, category.name)
        self.report.unknown_categories = sorted(unknown.values(), key=str.casefold)
        self.classification = {name for name, label in labels.items() if label.kind == Label.Kind.CLASSIFICATION}

    def _category_reason(self, category: CocoCategory) -> str:
        if category.name.casefold() in self.classification:
            return f"“{category.name}” is a classification label here: objects need a mask or box label"
        return f"category “{category.name}” has no label in the project (create labels to import it)"

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
        used = self.project.labels.count()
        for category in self.to_create.values():
            colour = category.color or COLOURS[used % len(COLOURS)]
            used += 1
            kind = category.kind or Label.Kind.MASK
            label = label_create(project=self.project, name=category.name, color=colour, kind=kind)
            self.report.labels_created.append(label.name)
            self._create_questions(category.questions, label)
        item_texts = {q.text.casefold() for q in self.project.questions.filter(label__isnull=True)}
        fresh = [spec for spec in coco.item_questions if spec.text.casefold() not in item_texts]
        self._create_questions(fresh, None)
        by_name = {label.name.casefold(): label for label in self.project.labels.all()}
        for spec in coco.classification_labels:
            label = by_name.get(spec.name.casefold())
            if label is None:
                colour = spec.color or COLOURS[used % len(COLOURS)]
                used += 1
                label = label_create(project=self.project, name=spec.name, color=colour, kind=Label.Kind.CLASSIFICATION)
                by_name[spec.name.casefold()] = label
                self.report.labels_created.append(label.name)
                self._create_questions(spec.questions, label)

    def _create_questions(self, specs: Iterable[QuestionSpec], label: Label | None) -> None:
        seen: set[str] = set()
        for spec in specs:
            if spec.text.casefold() in seen:
                continue  # the file asks the same twice: once is enough
            seen.add(spec.text.casefold())
            question_create(
                project=self.project, text=spec.text, choices=spec.choices, label=label, default=spec.default
            )
            self.report.questions_created += 1

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

    def _answer_map(self, label: Label) -> AnswerMap:
        if label.pk not in self.answer_maps:
            self.answer_maps[label.pk] = AnswerMap(
                ((q.text, q) for q in label.questions.all()), about=f"the label “{label.name}”"
            )
        return self.answer_maps[label.pk]

    def _annotations(self, coco: CocoFile, items: dict[int, MediaItem]) -> None:
        problems = Problems()
        # Each label with its questions, read once: annotation_create reads them through the label.
        labels = {
            label.name.casefold(): label
            for label in self.project.labels.exclude(kind=Label.Kind.CLASSIFICATION).prefetch_related("questions")
        }
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
            folded = self.category_label.get(annotation.category_id)
            if folded is None or folded not in labels:
                self.report.skip_annotation(annotation, self._category_reason(coco.categories[annotation.category_id]))
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
