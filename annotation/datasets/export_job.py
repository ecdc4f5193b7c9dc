"""Dataset export as a background job (kind ``export_dataset``): starting it, and its runner.

The runner writes the export into a scratch folder and saves it as the job's result file (stored
under the organisation's ``org-<id>/jobs/`` prefix; the jobs pages serve it after their tenant
check). Progress is reported per item; a cancelled job stops at its next progress update and
leaves nothing behind. A retry exports again from the start and replaces the file of an earlier run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.http import Http404

from annotation.datasets.export import dataset_export_run, export_check, export_file_name
from annotation.datasets.options import ExportOptions
from annotation.models import Project
from platform_core.jobs import JobProgress, job_runner, job_start
from platform_core.models import Job
from platform_core.tenancy import Tenant

KIND = "export_dataset"


def dataset_export_start(*, tenant: Tenant, project: Project, actor: Any, options: ExportOptions) -> Job:
    """Start exporting ``project`` (fetched through the tenancy door) with ``options``; owners and
    managers only. ValidationError when the export cannot be made."""
    if project.organization_id != tenant.org.pk:
        raise Http404("No such project.")
    if not tenant.can_manage:
        raise PermissionDenied("Only managers and owners export datasets.")
    export_check(project, options)
    return job_start(organization=tenant.org, kind=KIND, params=options.as_params(), created_by=actor, project=project)


@job_runner(KIND, label="Dataset export")
def run_export_dataset(job: Job, progress: JobProgress) -> dict[str, Any]:
    try:
        # The job's own organisation scopes the lookup: a job names no other tenant's project.
        project = Project.objects.for_org(job.organization).select_related("organization").get(pk=job.project_id)
    except Project.DoesNotExist:
        raise ValueError("The job names no project of its organisation.") from None
    options = ExportOptions.parse(job.params)

    def report_progress(done: int, total: int, message: str) -> None:
        progress.update(done=done, total=total, message=message)

    with tempfile.TemporaryDirectory(prefix="export-job-") as scratch:
        out = Path(scratch) / export_file_name(project, options)
        report = dataset_export_run(project=project, options=options, out=out, progress=report_progress)
        progress.flush()  # still this run's job? (JobCancelled otherwise: nothing is stored)
        if job.result_file:
            # An earlier run of this job (before a retry) left its file.
            job.result_file.delete(save=False)
        with out.open("rb") as handle:
            job.result_file.save(out.name, File(handle), save=False)
    return report
