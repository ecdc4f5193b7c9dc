"""The media item page (files are served by annotation.media_delivery)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.selectors import media_get, project_get
from platform_core.tenancy import member_required


@member_required
@require_GET
def media_detail(request: HttpRequest, project_id: int, media_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    item = media_get(request.tenant, media_id, project=project)
    return render(request, "annotation/media_detail.html", {"project": project, "item": item})
