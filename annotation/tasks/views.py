"""Task pages: a project's tasks (split, assign, reassign), "My tasks", and working through a
task's items with < > >> and Enter."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.models import MediaItem, Question, Task
from annotation.selectors import item_questions, project_get
from annotation.tasks import selectors, services
from annotation.tasks.forms import SplitForm
from platform_core.models import Membership, Role
from platform_core.tenancy import member_required


def _members(tenant):  # noqa: ANN001, ANN202
    return Membership.objects.for_org(tenant.org).select_related("user").order_by("user__username")


def _member_user(tenant, user_id: str):  # noqa: ANN001, ANN202
    """A member of the tenant by user id; anything else (another organisation's user) is None."""
    if not user_id.isdigit():
        return None
    membership = _members(tenant).filter(user_id=int(user_id)).first()
    return membership.user if membership else None


@member_required(role=Role.REVIEWER)
@require_http_methods(["GET", "POST"])
def project_tasks(request: HttpRequest, project_id: int) -> HttpResponse:
    """The project's tasks with progress and state; managers split items into tasks here."""
    tenant = request.tenant
    project = project_get(tenant, project_id)
    members = _members(tenant)
    form = SplitForm(request.POST or None, members=members)
    if request.method == "POST":
        if not tenant.can_manage:
            # Reviewers see the list; a split they send is refused like any action above their role.
            raise PermissionDenied("Only managers split items into tasks.")
        if form.is_valid():
            assignees = [_member_user(tenant, value) for value in form.cleaned_data["assignees"]]
            try:
                # One transaction: a refused assignment leaves no unassigned tasks behind.
                with transaction.atomic():
                    tasks = services.tasks_split(
                        tenant=tenant, project=project, size=form.cleaned_data["size"], actor=request.user
                    )
                    if assignees:
                        services.tasks_assign(tenant=tenant, tasks=tasks, assignees=assignees, actor=request.user)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Made {len(tasks)} task{'s' if len(tasks) != 1 else ''}.")
                return redirect("project_tasks", org_slug=tenant.org.slug, project_id=project.pk)
    context = {
        "project": project,
        "tasks": selectors.task_list(tenant, project),
        "members": members,
        "form": form,
        "unassigned_items": project.media.filter(task__isnull=True).count(),
        "can_manage": tenant.can_manage,
    }
    return render(request, "annotation/project_tasks.html", context, status=400 if form.errors else 200)


@member_required(role=Role.MANAGER)
@require_POST
def task_assign(request: HttpRequest, task_id: int) -> HttpResponse:
    tenant = request.tenant
    task = selectors.task_get(tenant, task_id)
    assignee = _member_user(tenant, request.POST.get("assignee", ""))
    if request.POST.get("assignee") and assignee is None:
        messages.error(request, "Choose a member of this organisation.")
    else:
        services.task_assign(tenant=tenant, task=task, assignee=assignee, actor=request.user)
        who = assignee.get_username() if assignee else "nobody"
        messages.success(request, f"{task.name} is assigned to {who}.")
    return redirect("project_tasks", org_slug=tenant.org.slug, project_id=task.project_id)


@member_required(role=Role.MANAGER)
@require_POST
def task_delete(request: HttpRequest, task_id: int) -> HttpResponse:
    tenant = request.tenant
    task = selectors.task_get(tenant, task_id)
    services.task_delete(tenant=tenant, task=task)
    messages.success(request, f"{task.name} removed; its items are back in the pool.")
    return redirect("project_tasks", org_slug=tenant.org.slug, project_id=task.project_id)


@member_required
@require_GET
def my_tasks(request: HttpRequest) -> HttpResponse:
    return render(request, "annotation/my_tasks.html", {"tasks": selectors.my_tasks(request.tenant)})


@member_required
@require_GET
def task_open(request: HttpRequest, task_id: int) -> HttpResponse:
    """Opening a task lands on its first unannotated item."""
    task = selectors.task_get(request.tenant, task_id)
    item = selectors.task_first_open_item(task)
    if item is None:
        messages.info(request, f"{task.name} holds no items.")
        return redirect("my_tasks", org_slug=request.tenant.org.slug)
    return redirect("task_item", org_slug=request.tenant.org.slug, task_id=task.pk, media_id=item.pk)


def item_save_and_go_on(
    request: HttpRequest, task: Task, item: MediaItem, questions: list[Question], *, page: str
) -> tuple[HttpResponse | None, str | None]:
    """Enter on an item page (``task_item`` or ``studio``): save the per-item answers, mark the item
    done and go to the task's next unannotated item on the same page, or to My tasks when none is
    left. A refused save gives no response and the error to show instead."""
    tenant = request.tenant
    answers = {str(q.pk): request.POST.get(f"q{q.pk}", "") for q in questions}
    try:
        services.item_save(tenant=tenant, item=item, answers=answers, done=True, actor=request.user)
    except ValidationError as exc:
        return None, " ".join(exc.messages)
    target = selectors.task_neighbours(task, item)["next_open"]
    if target is None:
        messages.success(request, f"Every item of {task.name} is done: submit it when you are happy.")
        return redirect("my_tasks", org_slug=tenant.org.slug), None
    return redirect(page, org_slug=tenant.org.slug, task_id=task.pk, media_id=target), None


@member_required
@require_http_methods(["GET", "POST"])
def task_item(request: HttpRequest, task_id: int, media_id: int) -> HttpResponse:
    """One item of a task: the image, the per-item questions, < > >> and Enter (save and next)."""
    task, item = selectors.task_item_get(request.tenant, task_id, media_id)
    questions = list(item_questions(task.project))
    error = None
    if request.method == "POST":
        response, error = item_save_and_go_on(request, task, item, questions, page="task_item")
        if response is not None:
            return response
    context = {
        "task": task,
        "project": task.project,
        "item": item,
        "questions": [(q, item.answers.get(str(q.pk), q.default)) for q in questions],
        "nav": selectors.task_neighbours(task, item),
        "total": task.items.count(),
        "done": task.items.filter(done_at__isnull=False).count(),
        "error": error,
    }
    return render(request, "annotation/task_item.html", context, status=400 if error else 200)


@member_required
@require_POST
def task_submit(request: HttpRequest, task_id: int) -> HttpResponse:
    tenant = request.tenant
    task = selectors.task_get(tenant, task_id)
    try:
        services.task_submit(tenant=tenant, task=task, actor=request.user)
    except ValidationError as exc:
        messages.error(request, f"{task.name}: " + " ".join(exc.messages))
    else:
        messages.success(request, f"{task.name} submitted for review.")
    return redirect("my_tasks", org_slug=tenant.org.slug)


@member_required(role=Role.REVIEWER)
@require_POST
def task_review(request: HttpRequest, task_id: int) -> HttpResponse:
    """Accept or reject a submitted task (rejected goes back to its annotator, with the reason
    given, if any, shown in their task list)."""
    tenant = request.tenant
    task = selectors.task_get(tenant, task_id)
    decision = request.POST.get("decision")
    if decision not in ("accept", "reject"):
        # A missing or mistyped decision must not reject the annotator's work.
        messages.error(request, f"{task.name}: choose to accept or to reject it.")
        return redirect("project_tasks", org_slug=tenant.org.slug, project_id=task.project_id)
    accept = decision == "accept"
    try:
        services.task_review(
            tenant=tenant, task=task, accept=accept, actor=request.user, note=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, f"{task.name}: " + " ".join(exc.messages))
    else:
        messages.success(request, f"{task.name} {'accepted' if accept else 'rejected'}.")
    return redirect("project_tasks", org_slug=tenant.org.slug, project_id=task.project_id)
