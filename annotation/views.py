"""Project pages and tenant-checked media file delivery."""

from __future__ import annotations

from django.core.files.storage import FileSystemStorage
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.selectors import label_list, media_get, media_list, project_get
from platform_core.tenancy import member_required

GALLERY_PAGE_SIZE = 24


@member_required
@require_GET
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    page = Paginator(media_list(project), GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"project": project, "labels": label_list(project), "page": page}
    if request.htmx:
        # "Load more" in the gallery asks for the next page of thumbnails only.
        return render(request, "annotation/project_detail.html#gallery-page", context)
    return render(request, "annotation/project_detail.html", context)


@member_required
@require_GET
def media_detail(request: HttpRequest, project_id: int, media_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    item = media_get(request.tenant, media_id, project=project)
    return render(request, "annotation/media_detail.html", {"project": project, "item": item})


@member_required
@require_GET
def media_file(request: HttpRequest, media_id: int) -> HttpResponse:
    """The stored file, after the tenant check: streamed from local storage, or a short-lived S3 URL."""
    item = media_get(request.tenant, media_id)
    storage = item.file.storage
    if isinstance(storage, FileSystemStorage):
        response = FileResponse(storage.open(item.file.name, "rb"), content_type=item.content_type)
        response["Cache-Control"] = "private, max-age=3600"
        return response
    return HttpResponseRedirect(storage.url(item.file.name))
