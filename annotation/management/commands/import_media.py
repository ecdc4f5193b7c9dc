"""manage.py import_media --project <id> <folder | archive.zip | s3://bucket/prefix>"""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.media_import import media_import_run, media_import_start_path, report_json
from annotation.media_sources import parse_source
from annotation.models import Project


class Command(BaseCommand):
    help = (
        "Import every image of a folder, a zip file or an S3 prefix (s3://bucket/prefix, read with the "
        "media storage's S3 settings) into a project. Each file is checked and re-encoded like an upload; "
        "bad files, hidden files and unsafe zip entries are skipped and listed in the report printed at "
        "the end. By default the import runs here and now, with a progress line. With --background it "
        "becomes a job for `manage.py db_worker` (shown with its progress on the jobs page, retryable); "
        "the worker must then see the same folder or file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="a folder, a .zip file, or s3://bucket/prefix")
        parser.add_argument("--project", type=int, required=True, help="the project's id")
        parser.add_argument("--user", help="username recorded as the uploader (and the job's owner)")
        parser.add_argument("--background", action="store_true", help="queue a job instead of importing here")

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        try:
            project = Project.objects.select_related("organization").get(pk=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"No project with id {options['project']}.") from None
        user = None
        if options["user"]:
            try:
                user = get_user_model().objects.get(username=options["user"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {options['user']!r}.") from None
        try:
            if options["background"]:
                job = media_import_start_path(project=project, source=options["source"], user=user)
                self.stdout.write(f"Queued as job {job.pk}; `manage.py db_worker` runs it.")
                return
            if not project.accepts("image"):
                raise CommandError(
                    f"The project {project.name!r} takes {project.get_media_type_display().lower()} only."
                )
            params = parse_source(options["source"])
            state = media_import_run(project=project, params=params, uploaded_by=user, progress=self._progress)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self._end_line()
        self.stdout.write(report_json(state))
        self.stdout.write(
            self.style.SUCCESS(f"{state.imported} imported, {state.skipped_count} skipped into {project.name!r}.")
        )

    _open_line = False

    def _progress(self, done: int, total: int, message: str) -> None:
        line = f"[{done}/{total}] {message}"
        if sys.stdout.isatty() and self.stdout._out is sys.stdout:
            # One line, rewritten in place.
            self.stdout.write(f"\r{line[:110]:<110}", ending="")
            self.stdout.flush()
            self._open_line = True
        elif self.verbosity >= 2 or done == total or done % 50 == 0:
            self.stdout.write(line)

    def _end_line(self) -> None:
        if self._open_line:
            self.stdout.write("")
            self._open_line = False
