"""The project page: progress, the upload zone, the pre-annotation form and the media gallery
(filters, infinite scroll, multi-select delete, a task or a pre-annotation from the selection)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from annotation.projects.forms import PreannotateForm
from annotation.projects.selectors import objects_per_label_for
from annotation.selectors import label_list, media_filtered, media_list, project_get
from annotation.tasks.selectors import task_list
from annotation.tasks.services import tasks_split
from platform_core.models import Membership, Role
from platform_core.tenancy import member_required

GALLERY_PAGE_SIZE = 24
FILTERS = ("done", "label", "task", "assignee", "proposed")


@member_required
@require_GET
@vary_on_headers("HX-Request")
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    tenant = request.tenant
    project = project_get(tenant, project_id)
    filters = {key: request.GET.get(key, "") for key in FILTERS}
    items = media_filtered(tenant, project, filters)
    page = Paginator(items, GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({key: value for key, value in filters.items() if value})
    # can_manage in the fragment too: pages loaded by scrolling or filtering keep their selection boxes.
    context = {
        "project": project,
        "page": page,
        "filters": filters,
        "filter_query": query,
        "can_manage": tenant.can_manage,
    }
    if request.htmx:
        # Infinite scroll and the filters ask for the gallery alone.
        return render(request, "annotation/project_detail.html#gallery-page", context)
    visible = media_list(tenant, project)
    labels = list(label_list(project))
    context.update(
        labels=labels,
        total=visible.count(),
        done=visible.filter(done_at__isnull=False).count(),
        objects_per_label=objects_per_label_for([project]).get(project.pk, []),
        tasks=task_list(tenant, project) if tenant.has_role(Role.REVIEWER) else [],
        assignees=Membership.objects.for_org(tenant.org).select_related("user").order_by("user__username"),
        preannotate_form=PreannotateForm(labels=labels) if tenant.can_manage else None,
    )
    return render(request, "annotation/project_detail.html", context)


def _selection(request: HttpRequest, project_id: int):  # noqa: ANN202 - (project, queryset)
    if not request.tenant.can_manage:
        raise PermissionDenied("Only managers change a project's media.")
    project = project_get(request.tenant, project_id)
    ids = [int(value) for value in request.POST.getlist("items") if value.isdigit()]
    return project, media_list(request.tenant, project).filter(pk__in=ids)


@member_required(role=Role.MANAGER)
@require_POST
def media_bulk_action(request: HttpRequest, project_id: int) -> HttpResponse:
    """Act on the gallery's selection: delete it, or make tasks of it."""
    project, selected = _selection(request, project_id)
    count = selected.count()
    if not count:
        messages.error(request, "Select at least one item first.")
    elif request.POST.get("action") == "delete":
        for item in selected:
            item.delete()  # one by one: each removes its stored files after commit
        messages.success(request, f"Deleted {count} item{'s' if count != 1 else ''}.")
    elif request.POST.get("action") == "task":
        try:
            tasks = tasks_split(tenant=request.tenant, project=project, size=count, items=selected, actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Made {tasks[0].name} from the selection.")
            return redirect("project_tasks", org_slug=request.tenant.org.slug, project_id=project.pk)
    else:
        messages.error(request, "Unknown action.")
    return redirect(project)


@member_required(role=Role.MANAGER)
@require_POST
def media_import(request: HttpRequest, project_id: int) -> HttpResponse:
    """A zip of images (and videos, where the project takes them), imported in the background; the job
    page shows its progress and report."""
    from annotation.media_import import media_import_start_zip

    project = project_get(request.tenant, project_id)
    archive = request.FILES.get("archive")
    if archive is None:
        messages.error(request, "Choose a zip file to import.")
        return redirect(project)
    try:
        job = media_import_start_zip(project=project, uploaded_file=archive, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(project)
    messages.success(request, f"Importing {archive.name} in the background.")
    return redirect("job_detail", org_slug=request.tenant.org.slug, job_id=job.pk)
