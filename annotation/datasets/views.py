"""The project page's Export button: start the export job, then on to its page on the Jobs pages
(progress, report, and the file to download)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from annotation.datasets.export_job import dataset_export_start
from annotation.datasets.forms import ExportForm
from annotation.datasets.options import FORMATS
from annotation.selectors import project_get
from platform_core.models import Role
from platform_core.tenancy import member_required


@member_required(role=Role.MANAGER)
@require_POST
def dataset_export(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    form = ExportForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a format to export: " + " or ".join(FORMATS.values()) + ".")
        return redirect(project)
    try:
        job = dataset_export_start(tenant=request.tenant, project=project, actor=request.user, options=form.options())
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(project)
    messages.success(request, f"Exporting {project.name} ({FORMATS[job.params['format']]}) in the background.")
    return redirect("job_detail", org_slug=request.tenant.org.slug, job_id=job.pk)
