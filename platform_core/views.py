"""Sign-in landing, organisation switcher and the organisation dashboard."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from annotation.projects.selectors import objects_per_label_for
from annotation.selectors import project_list_for
from platform_core.selectors import memberships_of
from platform_core.tenancy import member_required


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = list(memberships_of(request.user))
    if len(memberships) == 1:
        return redirect("dashboard", org_slug=memberships[0].organization.slug)
    return redirect("organization_list")


@login_required
def organization_list(request: HttpRequest) -> HttpResponse:
    return render(request, "platform_core/organization_list.html", {"memberships": memberships_of(request.user)})


@member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    projects = list(project_list_for(request.tenant))
    per_label = objects_per_label_for(projects)
    for project in projects:
        project.objects_per_label = per_label.get(project.pk, [])
    context = {"projects": projects, "can_manage": request.tenant.can_manage}
    return render(request, "platform_core/dashboard.html", context)
