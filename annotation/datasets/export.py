"""One export run: a project's items and annotations, streamed into a COCO ``.json`` file or a
``.zip`` (mask PNGs, or COCO with the images), and the report of what it held and left out. The
video formats (YouTube-VIS, COCO-video, DAVIS) are run by ``video_export`` through the same entry.

Zip layout: ``annotations/instances.json`` (COCO) or ``classes.json`` + ``masks/…`` (mask PNGs,
see ``mask_export``), and with images ``images/<file name>``, the stored files byte for byte.
Entries are written one by one: JSON is spooled to temporary files first and deflated into the
zip; PNGs and images, already compressed, are stored as they are.

Left out, and counted in the report: videos (each listed with a note; the video formats hold them,
so a project of both kinds exports its images as COCO and its videos as YouTube-VIS or COCO-video
in a second export), pre-annotations awaiting a person (unless asked for), items outside accepted
tasks (when only those are asked for).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.text import slugify

from annotation.datasets import mask_export
from annotation.datasets.coco_export import (
    AnswerTexts,
    CocoAnnotations,
    CocoWriter,
    category_entry,
    image_entry,
    question_entry,
)
from annotation.datasets.naming import FileNames
from annotation.datasets.options import ACCEPTED, COCO, MASKS, VIDEO_FORMATS, ExportOptions
from annotation.datasets.selectors import (
    ExportItem,
    classification_labels,
    export_items,
    export_labels,
    export_questions,
    export_stream,
    proposed_left_out,
)
from annotation.datasets.video_export import VideoExportRun, video_report_line
from annotation.models import DatasetSplit, MediaItem, Project

Progress = Callable[[int, int, str], None]
REPORTED_SKIPS = 1000  # the report lists at most this many skipped items (and counts them all)
COPY_CHUNK = 1024 * 1024
VIDEO_REASON = "a video: these formats hold images (YouTube-VIS is another format)"


def export_file_name(project: Project, options: ExportOptions) -> str:
    split = f"-split{options.split}{'-' + options.subset if options.subset else ''}" if options.split else ""
    return f"{slugify(project.name) or 'project'}{split}-{options.format}{options.extension}"


def export_check(project: Project, options: ExportOptions) -> None:
    """What makes an export of ``project`` impossible before it starts (ValidationError)."""
    if options.split is not None and not DatasetSplit.objects.filter(project=project, pk=options.split).exists():
        raise ValidationError({"split": f"No split {options.split} in this project."})
    if options.format == MASKS and len(export_labels(project)) > mask_export.MAX_CLASSES:
        raise ValidationError(
            {"format": f"Mask PNGs number at most {mask_export.MAX_CLASSES} labels; export this project as COCO."}
        )
    if options.is_video and project.media_type == Project.MediaType.IMAGES:
        raise ValidationError({"format": f"{project.name} holds images only: export it as COCO JSON or mask PNGs."})


def dataset_export_run(
    *, project: Project, options: ExportOptions, out: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """Write the export of ``project`` to ``out`` (a ``.zip`` when ``options.zipped``, else a
    ``.json``): its images, or its videos for a video format. ``progress(done, total, message)`` is
    called after each item or video. Returns the report. ``out`` is left half-written when something
    fails: callers write to a scratch path."""
    export_check(project, options)
    run_class = VideoExportRun if options.is_video else _ExportRun
    with tempfile.TemporaryDirectory(prefix="dataset-export-") as scratch:
        run = run_class(project, options, Path(scratch), progress)
        if options.zipped:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
                run.archive = archive
                run.write(out)
        else:
            run.write(out)
    return run.report(out)


class _ExportRun:
    def __init__(self, project: Project, options: ExportOptions, scratch: Path, progress: Progress | None) -> None:
        self.project = project
        self.options = options
        self.scratch = scratch
        self.progress = progress
        self.archive: zipfile.ZipFile | None = None
        self.labels = export_labels(project)
        self.label_names = {label.pk: label.name for label in self.labels}
        self.questions = export_questions(project)
        self.classification_labels = classification_labels(project)
        self.answer_texts = AnswerTexts(self.questions, self.classification_labels)
        self.names = FileNames()
        self.started = timezone.now()
        self.total = 0
        self.images = 0
        self.annotations = 0
        self.skipped: list[dict[str, str]] = []
        self.skipped_count = 0
        self.coco_annotations: CocoAnnotations | None = None

    # --- the run --------------------------------------------------------------------------------

    def write(self, out: Path) -> None:
        self.total = export_items(self.project, self.options).count()
        if self.progress:
            self.progress(0, self.total, f"{self.total} items to export")
        if self.options.format == COCO:
            self._write_coco(out)
        else:
            self._write_masks()

    def _items(self) -> Iterator[ExportItem]:
        for done, item in enumerate(export_stream(self.project, self.options), start=1):
            if item.is_video:
                self._skip(item.original_name, VIDEO_REASON)
            else:
                yield item
            if self.progress:
                self.progress(done, self.total, item.original_name)

    def _write_coco(self, out: Path) -> None:
        path = self.scratch / "instances.json" if self.archive else out
        self.coco_annotations = CocoAnnotations(self.answer_texts, polygons=self.options.polygons)
        with CocoWriter(path, self._coco_head()) as writer:
            for item in self._items():
                _, file_name = self._name(item)
                writer.image(image_entry(item.id, file_name, item.width, item.height, self.answer_texts(item.answers)))
                for annotation in item.annotations:
                    writer.annotation(self.coco_annotations.entry(annotation))
                self._count(item)
                self._image_file(item, file_name)
        if self.archive:
            self.archive.write(path, "annotations/instances.json")

    def _write_masks(self) -> None:
        archive = self.archive
        if archive is None:
            raise ValueError("Mask PNGs are written into a zip.")
        table = mask_export.class_table(self.labels)
        colours = mask_export.palette(table)
        class_of_label = {row["label_id"]: row["index"] for row in table if row["label_id"] is not None}
        with mask_export.InstanceIndexWriter() as index:
            for item in self._items():
                try:
                    semantic, instances = mask_export.render(item.height, item.width, item.annotations, class_of_label)
                except mask_export.TooManyObjects as exc:
                    self._skip(item.original_name, str(exc))
                    continue
                stem, file_name = self._name(item)
                archive.writestr(self._entry(f"masks/semantic/{stem}.png"), mask_export.semantic_png(semantic, colours))
                archive.writestr(self._entry(f"masks/instances/{stem}.png"), mask_export.instance_png(instances))
                index.add(mask_export.instance_entry(item.id, file_name, stem, item.annotations, self.label_names))
                self._count(item)
                self._image_file(item, file_name)
            index.close()
            archive.write(index.path, "masks/instances.json")
        archive.writestr("classes.json", mask_export.classes_json(table))

    # --- pieces ---------------------------------------------------------------------------------

    def _coco_head(self) -> dict[str, Any]:
        return {
            "info": {
                "description": self.project.name,
                "contributor": self.project.organization.name,
                "date_created": self.started.isoformat(),
                "year": self.started.year,
                "version": "1.0",
                "url": "",
                "export": self.options.as_params(),
            },
            "licenses": [],
            "categories": [category_entry(label, self.project, self.questions) for label in self.labels],
            "item_questions": [question_entry(q) for q in self.questions if q.label_id is None],
            "classification_labels": [
                {
                    "id": label.pk,
                    "name": label.name,
                    "color": label.color,
                    "questions": [question_entry(q) for q in self.questions if q.label_id == label.pk],
                }
                for label in self.classification_labels
            ],
        }

    def _name(self, item: ExportItem) -> tuple[str, str]:
        return self.names.name(item_id=item.id, original_name=item.original_name, stored_name=item.file)

    def _count(self, item: ExportItem) -> None:
        self.images += 1
        self.annotations += len(item.annotations)

    def _skip(self, name: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < REPORTED_SKIPS:
            self.skipped.append({"name": name, "reason": reason})

    def _entry(self, name: str) -> zipfile.ZipInfo:
        entry = zipfile.ZipInfo(name, date_time=timezone.localtime(self.started).timetuple()[:6])
        entry.compress_type = zipfile.ZIP_STORED  # PNG, JPEG and WebP are compressed already
        entry.external_attr = 0o644 << 16
        return entry

    def _image_file(self, item: ExportItem, file_name: str) -> None:
        """The stored image, byte for byte, into ``images/``."""
        if not (self.options.include_images and self.archive):
            return
        try:
            source = default_storage.open(item.file, "rb")
        except FileNotFoundError:
            self._skip(item.original_name, "its stored file is missing: the image is not in the zip")
            return
        with source, self.archive.open(self._entry(f"images/{file_name}"), "w", force_zip64=True) as target:
            shutil.copyfileobj(source, target, COPY_CHUNK)

    # --- the report -----------------------------------------------------------------------------

    def report(self, out: Path) -> dict[str, Any]:
        report: dict[str, Any] = {
            "format": self.options.format,
            "images": self.images,
            "annotations": self.annotations,
            "categories": len(self.labels),
            "proposed_left_out": proposed_left_out(self.project, self.options),
        }
        if self.options.only == ACCEPTED:
            everything = MediaItem.objects.filter(project=self.project).count()
            report["items_not_accepted_left_out"] = everything - self.total
        if self.coco_annotations is not None and self.options.polygons:
            report["polygons_kept_as_rle"] = self.coco_annotations.kept_as_rle
            report["polygons_holes_filled"] = self.coco_annotations.holes_filled
        report.update(
            skipped=self.skipped,
            skipped_count=self.skipped_count,
            file=out.name,
            bytes=out.stat().st_size,
        )
        return report


def report_line(report: dict[str, Any]) -> str:
    """The report in one line, as the command prints it."""
    if report["format"] in VIDEO_FORMATS:
        return video_report_line(report)
    parts = [
        f"{report['images']} images",
        f"{report['annotations']} annotations",
        f"{report['categories']} categories",
    ]
    if report["proposed_left_out"]:
        parts.append(f"{report['proposed_left_out']} pre-annotations awaiting a person left out")
    if report.get("items_not_accepted_left_out"):
        parts.append(f"{report['items_not_accepted_left_out']} items outside accepted tasks left out")
    if report.get("polygons_kept_as_rle"):
        parts.append(f"{report['polygons_kept_as_rle']} objects kept as RLE")
    if report.get("polygons_holes_filled"):
        parts.append(f"{report['polygons_holes_filled']} objects with holes filled")
    if report["skipped_count"]:
        parts.append(f"{report['skipped_count']} skipped")
    return f"{report['file']} ({report['format']}, {report['bytes']} bytes): " + ", ".join(parts)
