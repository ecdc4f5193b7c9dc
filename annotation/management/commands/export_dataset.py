"""manage.py export_dataset --project <id> --format coco|masks|youtube-vis|coco-video|davis --out <path>
[--include-images] [--only accepted] [--polygons] [--include-proposed] [--split <id> [--subset train|val|test]]"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.datasets.export import dataset_export_run, report_line
from annotation.datasets.options import ALL, FORMATS, ONLY, SUBSETS, ExportOptions
from annotation.models import Project


class Command(BaseCommand):
    help = (
        "Export a project's annotations here and now (the same export as the project page's job): COCO JSON "
        "with the stored RLE (or polygons), or mask PNGs (semantic and instance) in a zip; the project's videos "
        "as YouTube-VIS or COCO-video JSON (one object per track, with per-frame boxes and centroids) or DAVIS "
        "palette PNGs per frame in a zip. With --include-images the stored images (or frames) go into the zip "
        "too. --out names the file: a .json for COCO, COCO-video or YouTube-VIS alone, a .zip otherwise. "
        "Prints a one-line summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", type=int, required=True, help="the project's id")
        parser.add_argument("--format", choices=list(FORMATS), default="coco")
        parser.add_argument("--out", required=True, help="the file to write (.json, or .zip for masks or images)")
        parser.add_argument("--include-images", action="store_true", help="zip the stored images (or frames) in")
        parser.add_argument("--only", choices=list(ONLY), default=ALL, help="'accepted': items of accepted tasks")
        parser.add_argument("--polygons", action="store_true", help="COCO segmentations as polygons, not RLE")
        parser.add_argument("--include-proposed", action="store_true", help="keep pre-annotations that await a person")
        parser.add_argument("--split", type=int, help="only the items of this saved split (its id)")
        parser.add_argument("--subset", choices=list(SUBSETS), help="with --split: only this subset of it")

    def handle(self, *args: Any, **options: Any) -> None:
        # A command acts for no member of any organisation: whoever runs it on the server may read
        # every project, so the project is looked up by its id alone; everything the export reads
        # is then scoped to that project.
        try:
            project = Project.objects.select_related("organization").get(pk=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"No project with id {options['project']}.") from None
        try:
            export_options = ExportOptions.parse(
                {
                    "format": options["format"],
                    "polygons": options["polygons"],
                    "include_images": options["include_images"],
                    "only": options["only"],
                    "include_proposed": options["include_proposed"],
                    "split": options["split"],
                    "subset": options["subset"],
                }
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        out = Path(options["out"])
        if out.suffix.lower() != export_options.extension:
            raise CommandError(
                f"This export is a {export_options.extension} file: name --out accordingly (got {out.name!r})."
            )
        if not out.parent.is_dir():
            raise CommandError(f"No folder {str(out.parent)!r} to write {out.name!r} into.")
        self.verbosity = options["verbosity"]
        # Written beside the target and renamed at the end: a failed export leaves no half file.
        handle, scratch = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        os.close(handle)
        try:
            report = dataset_export_run(
                project=project, options=export_options, out=Path(scratch), progress=self._progress
            )
            os.replace(scratch, out)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        finally:
            Path(scratch).unlink(missing_ok=True)
        report["file"] = out.name
        self.stdout.write(self.style.SUCCESS(report_line(report)))

    def _progress(self, done: int, total: int, message: str) -> None:
        if self.verbosity >= 2:
            self.stdout.write(f"[{done}/{total}] {message}", ending="\n")
        elif self.verbosity >= 1 and sys.stderr.isatty() and total:
            self.stderr.write(f"\r[{done}/{total}]", ending="")
            if done == total:
                self.stderr.write("")
