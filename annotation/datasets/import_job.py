"""Dataset import as a background job (kind ``import_dataset``): keeping the uploaded file, starting
the job, and its runner.

The upload is checked at once for what can be told cheaply (a zip that is not one or is too large, a
JSON file over the size cap, a file that is neither a zip nor a JSON object), stored under the
project's ``imports/`` prefix, and read by the job. The run writes everything in one transaction
that also records the report in the job's parameters (``committed``), so a retry of a job whose run
committed returns that report instead of importing twice, and a run that lost its job (cancelled,
or superseded by a retry) commits nothing. The stored upload is deleted once imported, or once
refused (a refused file stays refused: upload a corrected one).

The job runs as the member who started it: the runner resolves their membership again and stops if
they are no longer a manager or owner.
"""

from __future__ import annotations

import zipfile
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import Http404

from annotation.datasets.coco_import import dataset_import_run
from annotation.datasets.coco_reading import ImportRefused, max_json_bytes
from annotation.datasets.import_mapping import IMPORT_FORMATS
from annotation.media_sources import validate_zip
from annotation.models import Project
from platform_core.jobs import JobCancelled, JobProgress, job_manager_tenant, job_runner, job_start
from platform_core.models import Job
from platform_core.tenancy import Tenant

KIND = "import_dataset"
SNIFF_BYTES = 1024


def job_project(job: Job) -> Project:
    try:
        # The job's own organisation scopes the lookup: a job names no other tenant's project.
        return Project.objects.for_org(job.organization).select_related("organization").get(pk=job.project_id)
    except Project.DoesNotExist:
        raise ValueError("The job names no project of its organisation.") from None


def _check_json_upload(uploaded_file: UploadedFile) -> None:
    limit = max_json_bytes()
    if uploaded_file.size is not None and uploaded_file.size > limit:
        raise ValidationError(
            f"The file is {uploaded_file.size} bytes; the limit for a COCO file is {limit} bytes, as for a "
            "YouTube-VIS file.",
            code="too_large",
        )
    uploaded_file.seek(0)
    head = uploaded_file.read(SNIFF_BYTES)
    uploaded_file.seek(0)
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if not text:
        raise ValidationError("The file is empty.", code="empty")
    if not text.startswith(b"{"):
        raise ValidationError(
            "The file is neither a zip nor a COCO JSON file (a JSON object with images, annotations and "
            "categories) nor a YouTube-VIS one (videos, annotations and categories).",
            code="not_coco",
        )


def dataset_import_start(
    *,
    tenant: Tenant,
    project: Project,
    actor: Any,
    uploaded_file: UploadedFile,
    create_labels: bool = False,
    proposed: bool = True,
    format: str | None = None,
) -> Job:
    """Keep an uploaded COCO or YouTube-VIS file (``.json``) or zip of images + COCO and start the
    job that imports it into ``project`` (fetched through the tenancy door); owners and managers
    only. ``format`` (``coco`` or ``youtube-vis``) says what the file is; None: the file says.
    ValidationError for a file that is plainly not importable."""
    if project.organization_id != tenant.org.pk:
        raise Http404("No such project.")
    if not tenant.can_manage:
        raise PermissionDenied("Only managers and owners import datasets.")
    if format is not None and format not in IMPORT_FORMATS:
        raise ValidationError(f"Unknown dataset format {str(format)[:40]!r}: use {' or '.join(IMPORT_FORMATS)}.")
    uploaded_file.seek(0)
    zipped = zipfile.is_zipfile(uploaded_file)
    uploaded_file.seek(0)
    if zipped:
        validate_zip(uploaded_file)
    else:
        _check_json_upload(uploaded_file)
    suffix = ".zip" if zipped else ".json"
    key = f"org-{project.organization_id}/project-{project.pk}/imports/dataset{suffix}"
    stored = default_storage.save(key, uploaded_file)
    params = {
        "source": "upload" if zipped else "upload_json",
        "storage_name": stored,
        "label": (uploaded_file.name or f"dataset{suffix}")[:255],
        "create_labels": bool(create_labels),
        "proposed": bool(proposed),
    }
    if format is not None:
        params["format"] = format
    try:
        with transaction.atomic():
            return job_start(organization=tenant.org, kind=KIND, params=params, created_by=actor, project=project)
    except Exception:
        default_storage.delete(stored)
        raise


def _forget_upload(params: dict[str, Any]) -> None:
    if str(params.get("source", "")).startswith("upload"):
        default_storage.delete(params["storage_name"])


@job_runner(KIND, label="Dataset import")
def run_import_dataset(job: Job, progress: JobProgress) -> dict[str, Any]:
    committed = job.params.get("committed")
    if committed:
        return committed  # an earlier run of this job imported the file
    project = job_project(job)
    tenant = job_manager_tenant(job)
    attempt = job.attempts

    def commit(report: dict[str, Any]) -> None:
        # Inside the import's transaction: only the run that owns the job may commit it.
        owned = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, attempts=attempt)
        if not owned.update(params={**job.params, "committed": report}):
            raise JobCancelled(f"Job {job.pk} was cancelled or taken over by a newer run.")

    def report_progress(done: int, total: int, message: str) -> None:
        progress.update(done=done, total=total, message=message)

    try:
        report = dataset_import_run(
            tenant=tenant,
            project=project,
            params=job.params,
            actor=job.created_by,
            commit=commit,
            progress=report_progress,
        )
    except ImportRefused:
        _forget_upload(job.params)
        raise
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from None
    _forget_upload(job.params)
    return report
