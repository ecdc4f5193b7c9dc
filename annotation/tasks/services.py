"""Writes on tasks and on an item's finished state. Each is atomic and checks the actor's role."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.models import MediaItem, Project, Question, Task
from platform_core.models import Membership, Role
from platform_core.realtime import publish_access_changed
from platform_core.tenancy import Tenant

MAX_TASK_SIZE = 10_000


def _require(tenant: Tenant, role: Role) -> None:
    if not tenant.has_role(role):
        raise PermissionDenied("Your role in this organisation does not allow this.")


def _assignable(project: Project, user: Any) -> None:
    if user is None:
        return
    if not Membership.objects.filter(organization_id=project.organization_id, user=user).exists():
        raise ValidationError({"assignee": "Tasks go to members of the project's organisation."})


def tasks_split(
    *, tenant: Tenant, project: Project, size: int, items: QuerySet[MediaItem] | None = None, actor: Any
) -> list[Task]:
    """Split items that are in no task yet into tasks of ``size`` items, in upload order.

    ``items`` narrows the split to a selection (a gallery selection); items already in a task are
    left where they are."""
    _require(tenant, Role.MANAGER)
    if not isinstance(size, int) or not 1 <= size <= MAX_TASK_SIZE:
        raise ValidationError({"size": f"A task holds between 1 and {MAX_TASK_SIZE} items."})
    with transaction.atomic():
        pool = project.media.filter(task__isnull=True)
        if items is not None:
            pool = pool.filter(pk__in=items.values("pk"))
        ids = list(pool.order_by("id").values_list("pk", flat=True))
        if not ids:
            raise ValidationError("Every item is already in a task: there is nothing to split.", code="nothing")
        number = project.tasks.count()
        tasks = []
        for start in range(0, len(ids), size):
            number += 1
            task = Task.objects.create(project=project, name=f"Task {number}", created_by=actor)
            MediaItem.objects.filter(pk__in=ids[start : start + size]).update(task=task)
            tasks.append(task)
    return tasks


def _took_away(task: Task, old_assignee_id: int | None) -> None:
    """The old assignee lost the task's items: their open studio sockets check again (after commit)
    and close on items they may no longer reach."""
    if old_assignee_id is not None and old_assignee_id != task.assignee_id:
        publish_access_changed(old_assignee_id)


def tasks_assign(*, tenant: Tenant, tasks: Sequence[Task], assignees: Sequence[Any], actor: Any) -> list[Task]:
    """Give ``tasks`` to ``assignees`` round robin (one assignee: all of them)."""
    _require(tenant, Role.MANAGER)
    if not assignees:
        raise ValidationError({"assignee": "Choose at least one annotator."})
    with transaction.atomic():
        for index, task in enumerate(tasks):
            assignee = assignees[index % len(assignees)]
            _assignable(task.project, assignee)
            old_assignee_id = task.assignee_id
            task.assignee = assignee
            task.save(update_fields=["assignee", "updated_at"])
            _took_away(task, old_assignee_id)
    return list(tasks)


def task_assign(*, tenant: Tenant, task: Task, assignee: Any, actor: Any) -> Task:
    """Assign, reassign or (``assignee=None``) unassign one task."""
    _require(tenant, Role.MANAGER)
    _assignable(task.project, assignee)
    old_assignee_id = task.assignee_id
    with transaction.atomic():
        task.assignee = assignee
        task.save(update_fields=["assignee", "updated_at"])
        _took_away(task, old_assignee_id)
    return task


def task_delete(*, tenant: Tenant, task: Task) -> None:
    """Remove a task; its items go back to the pool, with their annotations."""
    _require(tenant, Role.MANAGER)
    with transaction.atomic():
        old_assignee_id = task.assignee_id
        task.delete()
        if old_assignee_id is not None:
            publish_access_changed(old_assignee_id)


def _may_work_on(tenant: Tenant, task: Task, user: Any) -> bool:
    return task.assignee_id == user.pk or tenant.has_role(Role.REVIEWER)


def task_submit(*, tenant: Tenant, task: Task, actor: Any) -> Task:
    """The assignee hands in a finished task for review."""
    if task.assignee_id is None or task.assignee_id != actor.pk:
        raise PermissionDenied("Only the annotator of this task submits it.")
    if task.state not in (Task.State.NEW, Task.State.IN_PROGRESS, Task.State.REJECTED):
        raise ValidationError(f"A task that is {task.get_state_display().lower()} cannot be submitted.", code="state")
    left = task.items.filter(done_at__isnull=True).count()
    if left:
        raise ValidationError(f"{left} item{'s' if left != 1 else ''} still to do.", code="unfinished")
    task.state = Task.State.SUBMITTED
    task.save(update_fields=["state", "updated_at"])
    return task


REVIEW_NOTE_MAX = 1000


def task_review(*, tenant: Tenant, task: Task, accept: bool, actor: Any, note: str = "") -> Task:
    """Accept or reject a submitted task. A rejection's ``note`` (the reason) is kept on the task
    for its annotator to read; accepting clears the note of an earlier rejection."""
    _require(tenant, Role.REVIEWER)
    if task.state != Task.State.SUBMITTED:
        raise ValidationError("Only a submitted task is accepted or rejected.", code="state")
    note = (note or "").strip()
    if len(note) > REVIEW_NOTE_MAX:
        raise ValidationError({"reason": f"Keep the reason to {REVIEW_NOTE_MAX} characters."})
    task.state = Task.State.ACCEPTED if accept else Task.State.REJECTED
    task.review_note = "" if accept else note
    task.save(update_fields=["state", "review_note", "updated_at"])
    return task


def _clean_answers(questions: Iterable[Question], answers: dict[str, Any]) -> dict[str, str]:
    by_id = {str(q.pk): q for q in questions}
    unknown = set(answers) - set(by_id)
    if unknown:
        raise ValidationError({"answers": f"Unknown questions: {', '.join(sorted(unknown))}."})
    cleaned: dict[str, str] = {}
    for key, question in by_id.items():
        value = answers.get(key, "") or ""
        if value and value not in question.choices:
            raise ValidationError({"answers": f"{question.text}: {value!r} is not one of the choices."})
        if question.required and not value:
            raise ValidationError({"answers": f"{question.text}: an answer is required."})
        if value:
            cleaned[key] = value
    return cleaned


def item_save(*, tenant: Tenant, item: MediaItem, answers: dict[str, Any], done: bool, actor: Any) -> MediaItem:
    """Save an item's answers to the per-item questions and, with ``done``, mark it finished."""
    task = item.task
    if task is not None and not _may_work_on(tenant, task, actor):
        raise PermissionDenied("This item belongs to another annotator's task.")
    if task is not None and task.state in (Task.State.SUBMITTED, Task.State.ACCEPTED):
        raise ValidationError("This task is submitted; it can no longer be changed.", code="state")
    questions = item.project.questions.filter(label__isnull=True)
    with transaction.atomic():
        item.answers = _clean_answers(questions, answers)
        fields = ["answers"]
        if done and item.done_at is None:
            item.done_at, item.done_by = timezone.now(), actor
            fields += ["done_at", "done_by"]
        item.save(update_fields=fields)
        if task is not None and task.state == Task.State.NEW:
            task.state = Task.State.IN_PROGRESS
            task.save(update_fields=["state", "updated_at"])
    return item
