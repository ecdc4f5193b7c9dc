"""Reads on projects, labels and media, always through the tenant."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from annotation.models import Label, MediaItem, Project
from platform_core.tenancy import Tenant, get_for_org_or_404


def project_list_for(tenant: Tenant) -> QuerySet[Project]:
    return Project.objects.for_org(tenant.org).annotate(
        media_count=Count("media", distinct=True), label_count=Count("labels", distinct=True)
    )


def project_get(tenant: Tenant, project_id: int) -> Project:
    return get_for_org_or_404(Project, tenant.org, pk=project_id)


def label_list(project: Project) -> QuerySet[Label]:
    return project.labels.all()


def media_list(project: Project) -> QuerySet[MediaItem]:
    return project.media.all()


def media_get(tenant: Tenant, media_id: int, *, project: Project | None = None) -> MediaItem:
    queryset = MediaItem.objects.select_related("project")
    if project is not None:
        queryset = queryset.filter(project=project)
    return get_for_org_or_404(queryset, tenant.org, pk=media_id)
