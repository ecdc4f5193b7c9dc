"""Bulk import of images and videos into a project: from a folder, a zip file or an S3 prefix, as a job.

Every file goes through ``media_create`` (the same checks as an upload: images re-encoded, videos
checked and their frames extracted, in a job of their own for long clips; each file, videos too,
bound by ``MAX_UPLOAD_BYTES`` here); a bad file is skipped and reported, never fatal. The report is
``{"imported": n, "skipped": [{"name": ..., "reason": ...}], ...}``.

Retries import nothing twice: files are taken in name order and each import commits together
with the job's cursor (the last name done, kept in ``params["resume"]`` because a retry clears the
report) in one transaction, so a retried job resumes after the last file it committed and still
reports everything. A run that lost the job (cancelled, or superseded by a retry) cannot commit,
so a stale worker waking up imports nothing either.

Zip archives are read entry by entry, never extracted to disk: entries with unsafe paths, links,
encryption or sizes over the upload limit are skipped, and an archive with too many entries or
too much uncompressed data is refused whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from annotation.media_services import media_create
from annotation.media_sources import Entry, import_limits, open_entries, parse_source, validate_zip
from annotation.models import MediaItem, Project
from annotation.video_services import video_frames_delete
from platform_core.jobs import JobProgress, job_runner, job_start
from platform_core.models import Job

logger = logging.getLogger(__name__)

KIND = "import_media"
REPORTED_SKIPS = 1000  # the report lists at most this many skipped files (and counts them all)

Progress = Callable[[int, int, str], None]


class ImportSuperseded(RuntimeError):
    """This run no longer owns its job (cancelled, or a newer run took over): stop, commit nothing."""


@dataclass
class ImportState:
    imported: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    cursor: str | None = None
    # Whether the file at the cursor was skipped (for the progress message; not kept).
    cursor_skipped: bool = False

    @classmethod
    def from_resume(cls, report: dict[str, Any] | None) -> ImportState:
        report = report or {}
        return cls(
            imported=int(report.get("imported", 0)),
            skipped=list(report.get("skipped", [])),
            skipped_count=int(report.get("skipped_count", len(report.get("skipped", [])))),
            cursor=report.get("cursor"),
        )

    def skip(self, name: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < REPORTED_SKIPS:
            self.skipped.append({"name": name, "reason": reason})

    def report(self, *, with_cursor: bool = False) -> dict[str, Any]:
        report: dict[str, Any] = {
            "imported": self.imported,
            "skipped": self.skipped,
            "skipped_count": self.skipped_count,
        }
        if with_cursor:
            report["cursor"] = self.cursor
        return report

    def copy(self) -> ImportState:
        return ImportState(self.imported, list(self.skipped), self.skipped_count, self.cursor, self.cursor_skipped)


# --- starting ----------------------------------------------------------------------------------


def media_import_start_zip(*, project: Project, uploaded_file: UploadedFile, user: Any) -> Job:
    """Keep an uploaded zip in storage and start the job that imports it.

    The archive is checked first (a zip at all, entry count, total size), so an unusable one is
    refused at once with a ValidationError instead of failing later in the worker.
    """
    validate_zip(uploaded_file)
    uploaded_file.seek(0)
    key = f"org-{project.organization_id}/project-{project.pk}/imports/upload.zip"
    stored = default_storage.save(key, uploaded_file)
    params = {"source": "upload", "storage_name": stored, "label": (uploaded_file.name or "upload.zip")[:255]}
    try:
        with transaction.atomic():
            return job_start(
                organization=project.organization, kind=KIND, params=params, created_by=user, project=project
            )
    except Exception:
        default_storage.delete(stored)
        raise


def media_import_start_path(*, project: Project, source: str, user: Any) -> Job:
    """Start importing a folder or zip file on the server, or ``s3://bucket/prefix``.

    For the command line and other trusted callers: the path is read with the server's rights and
    the bucket with the platform's S3 credentials, so never pass a path taken from a request.
    """
    params = parse_source(source)
    return job_start(organization=project.organization, kind=KIND, params=params, created_by=user, project=project)


# --- running -----------------------------------------------------------------------------------


@job_runner(KIND, label="Media import")
def run_import_media(job: Job, progress: JobProgress) -> dict[str, Any]:
    project = job.project
    if project is None or project.organization_id != job.organization_id:
        raise ValueError("The job names no project of its organisation.")
    attempt = job.attempts

    def commit(state: ImportState) -> None:
        # Only the run that owns the job may record progress; the media row it was written with
        # rolls back with it otherwise. The report is what the job page shows meanwhile.
        owned = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, attempts=attempt)
        params = {**job.params, "resume": state.report(with_cursor=True)}
        if not owned.update(params=params, report=state.report()):
            raise ImportSuperseded(f"Job {job.pk} was cancelled or taken over by a newer run.")

    def report_progress(done: int, total: int, message: str) -> None:
        progress.update(done=done, total=total, message=message)

    state = media_import_run(
        project=project,
        params=job.params,
        uploaded_by=job.created_by,
        state=ImportState.from_resume(job.params.get("resume")),
        commit=commit,
        progress=report_progress,
    )
    if job.params.get("source") == "upload":
        # Done with the uploaded archive; a failed job keeps it for its retry.
        default_storage.delete(job.params["storage_name"])
    return state.report()


def media_import_run(
    *,
    project: Project,
    params: dict[str, Any],
    uploaded_by: Any = None,
    state: ImportState | None = None,
    commit: Callable[[ImportState], None] | None = None,
    progress: Progress | None = None,
) -> ImportState:
    """Import every file the source names, after ``state.cursor``; returns the final state.

    ``commit`` records the state inside the transaction that stores each file (the job runner
    writes it into the job); ``progress(done, total, message)`` is called after each file.
    """
    state = state or ImportState()
    commit = commit or (lambda _state: None)
    limits = import_limits()
    with open_entries(params, limits) as entries:
        entries = sorted(entries, key=lambda entry: entry.name)
        total = len(entries)
        if progress:
            progress(0, total, f"{total} files to look at")
        previous: str | None = None
        for index, entry in enumerate(entries, start=1):
            duplicate = entry.name == previous
            previous = entry.name
            if state.cursor is not None and entry.name <= state.cursor:
                continue  # done by an earlier run of this job
            state = _import_one(
                project,
                entry,
                "duplicate name in the archive" if duplicate else None,
                uploaded_by,
                state,
                commit,
                limits.max_file_bytes,
            )
            if progress:
                progress(index, total, f"{entry.name}: {'skipped' if state.cursor_skipped else 'imported'}")
    return state


def _import_one(
    project: Project,
    entry: Entry,
    reason: str | None,
    uploaded_by: Any,
    state: ImportState,
    commit: Callable[[ImportState], None],
    max_bytes: int,
) -> ImportState:
    reason = reason or entry.skip
    if reason is None and entry.size is not None and entry.size > max_bytes:
        reason = f"{entry.size} bytes; the limit is {max_bytes} bytes"
    if reason is None:
        try:
            data = entry.read()
        except ValidationError as exc:
            reason = " ".join(exc.messages)
        else:
            done = state.copy()
            done.imported += 1
            done.cursor = entry.name
            done.cursor_skipped = False
            try:
                with transaction.atomic():
                    item = media_create(project=project, name=entry.name, data=data, uploaded_by=uploaded_by)
                    try:
                        commit(done)
                    except BaseException:
                        _delete_files(item)
                        raise
            except ValidationError as exc:
                reason = " ".join(exc.messages)
            except (FileNotFoundError, PermissionError) as exc:
                # Gone or unreadable since the folder was listed.
                reason = f"could not be read ({exc.strerror})"
            else:
                return done
    skipped = state.copy()
    skipped.skip(entry.name, reason)
    skipped.cursor = entry.name
    skipped.cursor_skipped = True
    commit(skipped)
    return skipped


def _delete_files(item: MediaItem) -> None:
    # The row rolls back; its files were already written.
    for stored in (item.file, item.thumbnail):
        if stored.name:
            stored.storage.delete(stored.name)
    video_frames_delete(item.file.storage, item.frames_prefix)


def report_json(state: ImportState) -> str:
    return json.dumps(state.report(), indent=2, ensure_ascii=False)
