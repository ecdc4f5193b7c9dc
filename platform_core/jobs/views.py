"""Job pages: the list and one job (htmx partials for the live parts), the result download, and
Cancel / Retry."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import FileSystemStorage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from platform_core.jobs.selectors import (
    access_job,
    job_list_for,
    job_may_control,
    job_report_view,
    job_rows,
    job_sees_all,
)
from platform_core.jobs.services import job_cancel, job_retry
from platform_core.tenancy import member_required

PAGE_SIZE = 25


def _live_context(request: HttpRequest) -> dict:
    # What static/js/jobs.js needs: the socket, and the server's clock to tell a stalled job
    # without trusting the browser's.
    return {
        "jobs_socket": f"/ws/o/{request.tenant.org.slug}/jobs/",
        "stale_seconds": settings.JOB_STALE_SECONDS,
        "server_now": timezone.now(),
    }


def _render_live(request: HttpRequest, template: str, partial: str, context: dict) -> HttpResponse:
    response = render(request, f"{template}#{partial}" if request.htmx else template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@member_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(job_list_for(request.tenant), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": job_rows(request.tenant, page),
        "sees_all": job_sees_all(request.tenant),
        **_live_context(request),
    }
    return _render_live(request, "platform_core/jobs.html", "jobs-table", context)


@member_required
@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = access_job(request.tenant, job_id)
    context = {
        "row": job_rows(request.tenant, [job])[0],
        "report": job_report_view(job.report),
        **_live_context(request),
    }
    return _render_live(request, "platform_core/jobs_detail.html", "job-status", context)


@member_required
@require_GET
def job_result(request: HttpRequest, job_id: int) -> HttpResponse:
    """The job's result file, after the tenant check, always as a download."""
    job = access_job(request.tenant, job_id)
    if not job.result_file:
        raise Http404("This job has no result file.")
    storage = job.result_file.storage
    filename = PurePosixPath(job.result_file.name).name
    if isinstance(storage, FileSystemStorage):
        try:
            handle = storage.open(job.result_file.name, "rb")
        except FileNotFoundError:
            raise Http404("The result file is gone.") from None
        response = FileResponse(handle, as_attachment=True, filename=filename)
        response["Cache-Control"] = "private, no-cache"
        return response
    disposition = f'attachment; filename="{filename}"'
    return HttpResponseRedirect(
        storage.url(job.result_file.name, parameters={"ResponseContentDisposition": disposition})
    )


def _control(request: HttpRequest, job_id: int, action: str) -> HttpResponse:
    job = access_job(request.tenant, job_id)
    if not job_may_control(request.tenant, job):
        raise PermissionDenied("Only managers and the member who started a job may cancel or retry it.")
    try:
        if action == "cancel":
            job_cancel(job=job, actor=request.user)
            messages.success(request, f"Job #{job.pk} cancelled.")
        else:
            job_retry(job=job, actor=request.user)
            messages.success(request, f"Job #{job.pk} queued again.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("job_detail", kwargs={"org_slug": request.tenant.org.slug, "job_id": job.pk})
    return HttpResponseRedirect(target, status=303)


@member_required
@require_POST
def job_cancel_view(request: HttpRequest, job_id: int) -> HttpResponse:
    return _control(request, job_id, "cancel")


@member_required
@require_POST
def job_retry_view(request: HttpRequest, job_id: int) -> HttpResponse:
    return _control(request, job_id, "retry")
