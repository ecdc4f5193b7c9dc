"""Reads on tasks: lists with progress, "My tasks", and where to go next inside a task."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from annotation.models import MediaItem, Project, Task
from platform_core.models import Role
from platform_core.tenancy import Tenant, get_for_org_or_404


def _with_progress(queryset: QuerySet[Task]) -> QuerySet[Task]:
    return queryset.select_related("assignee", "project").annotate(
        item_count=Count("items", distinct=True),
        done_count=Count("items", filter=Q(items__done_at__isnull=False), distinct=True),
    )


def task_list(tenant: Tenant, project: Project) -> QuerySet[Task]:
    """The project's tasks; an annotator's list holds only their own (as ``task_get`` does)."""
    tasks = Task.objects.for_org(tenant.org).filter(project=project)
    if not tenant.has_role(Role.REVIEWER):
        tasks = tasks.filter(assignee=tenant.membership.user)
    return _with_progress(tasks).order_by("id")


def my_tasks(tenant: Tenant) -> QuerySet[Task]:
    return _with_progress(Task.objects.for_org(tenant.org).filter(assignee=tenant.membership.user)).order_by(
        "project__name", "id"
    )


def task_get(tenant: Tenant, task_id: int) -> Task:
    """A task the requesting member may open: their own, or any task for reviewers and above."""
    queryset = Task.objects.select_related("project", "assignee")
    if not tenant.has_role(Role.REVIEWER):
        queryset = queryset.filter(assignee=tenant.membership.user)
    return get_for_org_or_404(queryset, tenant.org, pk=task_id)


def task_item_get(tenant: Tenant, task_id: int, media_id: int) -> tuple[Task, MediaItem]:
    """A task the member may open and one of its items: 404 for an item of another task too."""
    from annotation.selectors import media_get

    task = task_get(tenant, task_id)
    item = media_get(tenant, media_id, project=task.project)
    if item.task_id != task.pk:
        raise Http404("No such item in this task.")
    return task, item


def task_items(task: Task) -> QuerySet[MediaItem]:
    return task.items.order_by("id")


def task_first_open_item(task: Task) -> MediaItem | None:
    """Where opening a task lands: its first unannotated item, else its first item."""
    items = task_items(task)
    return items.filter(done_at__isnull=True).first() or items.first()


def task_neighbours(task: Task, item: MediaItem) -> dict[str, int | None]:
    """Ids of the previous, next and next unannotated items (wrapping round) around ``item``."""
    items = task_items(task)
    previous = items.filter(id__lt=item.pk).order_by("-id").values_list("pk", flat=True).first()
    following = items.filter(id__gt=item.pk).values_list("pk", flat=True).first()
    open_items = items.filter(done_at__isnull=True).exclude(pk=item.pk)
    next_open = (
        open_items.filter(id__gt=item.pk).values_list("pk", flat=True).first()
        or open_items.values_list("pk", flat=True).first()
    )
    position = items.filter(id__lt=item.pk).count() + 1
    return {"previous": previous, "next": following, "next_open": next_open, "position": position}
