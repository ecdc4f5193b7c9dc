"""Reads on projects, labels and media, always through the tenant.

The annotator-scope rule lives here: an annotator reaches only the items of their own tasks (a
foreign item is the same 404 as a missing one); reviewers and above reach every item."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from annotation.models import Annotation, Label, MediaItem, Project, Question
from platform_core.models import Role
from platform_core.tenancy import Tenant, get_for_org_or_404


def project_list_for(tenant: Tenant) -> QuerySet[Project]:
    # Ordered here: Meta.ordering does not apply to a query with aggregates.
    return (
        Project.objects.for_org(tenant.org)
        .annotate(
            media_count=Count("media", distinct=True),
            done_count=Count("media", filter=Q(media__done_at__isnull=False), distinct=True),
            label_count=Count("labels", distinct=True),
        )
        .order_by("name", "id")
    )


def project_get(tenant: Tenant, project_id: int) -> Project:
    return get_for_org_or_404(Project, tenant.org, pk=project_id)


def label_list(project: Project) -> QuerySet[Label]:
    return project.labels.all()


def label_list_with_counts(project: Project) -> QuerySet[Label]:
    # The order is the studio's 1…9 keys; Meta.ordering does not apply to a query with aggregates.
    return (
        project.labels.annotate(annotation_count=Count("annotations", distinct=True))
        .order_by("order", "name")
        .prefetch_related("questions")
    )


def label_get(tenant: Tenant, project: Project, label_id: int | str) -> Label:
    return get_for_org_or_404(Label.objects.filter(project=project), tenant.org, pk=label_id)


def question_get(tenant: Tenant, project: Project, question_id: int) -> Question:
    return get_for_org_or_404(Question.objects.filter(project=project), tenant.org, pk=question_id)


def item_questions(project: Project) -> QuerySet[Question]:
    return project.questions.filter(label__isnull=True).order_by("order", "id")


def objects_per_label(project: Project) -> list[dict]:
    """Annotation counts per label (every label, zero included), in label order."""
    return list(
        project.labels.annotate(objects=Count("annotations")).values("pk", "name", "color", "objects").order_by("order")
    )


def media_visible(tenant: Tenant) -> QuerySet[MediaItem]:
    """Every item the member may reach: all of them from reviewer up, their tasks' items below."""
    queryset = MediaItem.objects.for_org(tenant.org)
    if not tenant.has_role(Role.REVIEWER):
        queryset = queryset.filter(task__assignee=tenant.membership.user)
    return queryset


def media_list(tenant: Tenant, project: Project) -> QuerySet[MediaItem]:
    return media_visible(tenant).filter(project=project).select_related("task__assignee").order_by("id")


def media_filtered(tenant: Tenant, project: Project, filters: dict[str, str]) -> QuerySet[MediaItem]:
    """The gallery's filters: ``done`` (yes / no), ``label`` (id), ``task`` (id or "none"),
    ``assignee`` (user id or "none"), ``proposed`` (yes / no: holds pre-annotations awaiting a
    person, or none). Unknown or malformed values are ignored."""
    items = media_list(tenant, project)
    done = filters.get("done")
    if done == "yes":
        items = items.filter(done_at__isnull=False)
    elif done == "no":
        items = items.filter(done_at__isnull=True)
    label = filters.get("label", "")
    if label.isdigit():
        items = items.filter(pk__in=Annotation.objects.filter(label_id=int(label)).values("media_id"))
    task = filters.get("task", "")
    if task == "none":
        items = items.filter(task__isnull=True)
    elif task.isdigit():
        items = items.filter(task_id=int(task))
    proposed = filters.get("proposed")
    if proposed in ("yes", "no"):
        with_proposals = Annotation.objects.filter(proposed=True).values("media_id")
        items = items.filter(pk__in=with_proposals) if proposed == "yes" else items.exclude(pk__in=with_proposals)
    assignee = filters.get("assignee", "")
    if assignee == "none":
        items = items.filter(task__assignee__isnull=True)
    elif assignee.isdigit():
        items = items.filter(task__assignee_id=int(assignee))
    return items


def media_get(tenant: Tenant, media_id: int, *, project: Project | None = None) -> MediaItem:
    queryset = media_visible(tenant).select_related("project", "task")
    if project is not None:
        queryset = queryset.filter(project=project)
    return get_for_org_or_404(queryset, tenant.org, pk=media_id)
