"""manage.py import_dataset --project <id> [--format coco|youtube-vis] <file.json | dataset.zip>
[--create-labels] [--as-proposed | --as-accepted] [--user <username>]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.datasets.coco_import import dataset_import_run, report_line
from annotation.datasets.coco_reading import ImportRefused
from annotation.datasets.command_support import command_project, command_tenant
from annotation.datasets.import_mapping import IMPORT_FORMATS


class Command(BaseCommand):
    help = (
        "Import a COCO or YouTube-VIS dataset into a project here and now (the same import as the project page's "
        "job): a COCO file puts its masks (RLE or polygons) on the items of the same file name; a zip of images "
        "with one COCO file creates the items first. A YouTube-VIS file puts each track's masks on the project's "
        "video of its frames' folder name, as a new track (a video whose frame count differs refuses the file). "
        "Without --format the file says which it is. Objects are pre-annotations awaiting a person unless "
        "--as-accepted. A malformed file is refused with its first problems and nothing is imported. Prints the "
        "report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="a COCO or YouTube-VIS .json file, or a .zip of images with one COCO file")
        parser.add_argument("--project", type=int, required=True, help="the project's id")
        parser.add_argument(
            "--format", choices=list(IMPORT_FORMATS), help="the dataset's format (default: what the file holds)"
        )
        parser.add_argument("--create-labels", action="store_true", help="create labels for unknown categories")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--as-proposed", dest="proposed", action="store_true", default=True, help="pre-annotations (the default)"
        )
        mode.add_argument("--as-accepted", dest="proposed", action="store_false", help="accepted objects")
        parser.add_argument("--user", help="the manager the import acts as (default: the organisation's first owner)")

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        project = command_project(options["project"])
        tenant, user = command_tenant(project, options["user"])
        path = Path(options["path"]).expanduser().resolve()
        if not path.is_file():
            raise CommandError(f"{options['path']}: no such file.")
        params = {
            "source": "zip" if path.suffix.lower() == ".zip" else "json",
            "path": str(path),
            "label": path.name,
            "create_labels": options["create_labels"],
            "proposed": options["proposed"],
        }
        if options["format"]:
            params["format"] = options["format"]
        try:
            report = dataset_import_run(
                tenant=tenant, project=project, params=params, actor=user, progress=self._progress
            )
        except ImportRefused as exc:
            raise CommandError(exc.message) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
        self.stdout.write(self.style.SUCCESS(report_line(report)))

    def _progress(self, done: int, total: int, message: str) -> None:
        if self.verbosity >= 2:
            self.stderr.write(f"[{done}/{total}] {message}")
