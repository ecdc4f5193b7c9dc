"""Tasks: a project's tasks, splitting items into tasks and assigning them, one task (assign,
submit, review, delete), and the caller's own tasks."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.models import Task
from annotation.selectors import media_visible, project_get
from annotation.tasks import services
from annotation.tasks.selectors import my_tasks, task_get, task_list
from platform_core.api import ErrorOutput, TenantAPIView
from platform_core.models import Membership, Role
from platform_core.tenancy import Tenant

TRANSITIONS = ["submitted", "accepted", "rejected"]


class TaskOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    name = serializers.CharField()
    assignee = serializers.IntegerField(source="assignee_id", allow_null=True, help_text="A user id.")
    assignee_username = serializers.CharField(source="assignee.username", allow_null=True, default=None)
    state = serializers.CharField(help_text="`new`, `in_progress`, `submitted`, `accepted` or `rejected`.")
    item_count = serializers.SerializerMethodField()
    done_count = serializers.SerializerMethodField(help_text="Items saved as finished.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    # Lists carry the counts as annotations (one query); a single task counts them itself.
    def get_item_count(self, task: Task) -> int:
        count = getattr(task, "item_count", None)
        return task.items.count() if count is None else count

    def get_done_count(self, task: Task) -> int:
        count = getattr(task, "done_count", None)
        return task.items.filter(done_at__isnull=False).count() if count is None else count


class TaskSplitInput(serializers.Serializer):
    size = serializers.IntegerField(
        required=False, help_text="Items per task; without `items`, every item in no task yet is split."
    )
    items = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        allow_empty=False,
        help_text="Split only these items (a gallery selection); one task unless `size` is given.",
    )
    assignees = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        allow_empty=False,
        help_text="User ids of members: the new tasks go to them round robin.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "size" not in attrs and "items" not in attrs:
            raise serializers.ValidationError("Give `size`, `items` or both.")
        return attrs


class TaskSplitOutput(serializers.Serializer):
    tasks = TaskOutput(many=True)


class TaskUpdateInput(serializers.Serializer):
    assignee = serializers.IntegerField(
        required=False, allow_null=True, help_text="A member's user id; null to unassign (managers and owners)."
    )
    state = serializers.ChoiceField(
        choices=TRANSITIONS,
        required=False,
        help_text="`submitted` (the assignee, when every item is done); `accepted` or `rejected` (reviewers and "
        "above, for a submitted task).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give `assignee`, `state` or both.")
        return attrs


def _members(tenant: Tenant, user_ids: list[int], field: str) -> list[Any]:
    """The users of these ids, each a member of the tenant; one answer for missing and foreign ids."""
    found = {
        membership.user_id: membership.user
        for membership in Membership.objects.for_org(tenant.org).filter(user_id__in=user_ids).select_related("user")
    }
    unknown = [user_id for user_id in user_ids if user_id not in found]
    if unknown:
        raise serializers.ValidationError({field: [f"No member with id {', '.join(map(str, unknown))}."]})
    return [found[user_id] for user_id in user_ids]


class ProjectTaskListApi(TenantAPIView):
    @extend_schema(tags=["tasks"], operation_id="tasks_list", responses={200: TaskOutput(many=True)})
    def get(self, request: Request, org_slug: str, project_id: int) -> Response:
        project = project_get(self.tenant, project_id)
        return self.paginated(task_list(self.tenant, project), TaskOutput)

    @extend_schema(
        tags=["tasks"],
        operation_id="tasks_split",
        description="Split items that are in no task yet into new tasks (managers and owners): all of them by "
        "`size`, or a selection (`items`); with `assignees`, the new tasks are given to them round robin. "
        "Nothing is stored when any part is refused.",
        request=TaskSplitInput,
        responses={201: TaskSplitOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        data = self.parse(TaskSplitInput)
        items = None
        if "items" in data:
            wanted = set(data["items"])
            items = media_visible(self.tenant).filter(project=project, pk__in=wanted)
            missing = wanted - set(items.values_list("pk", flat=True))
            if missing:
                raise serializers.ValidationError(
                    {"items": [f"No item with id {', '.join(map(str, sorted(missing)))} in this project."]}
                )
        size = data.get("size", len(set(data.get("items", []))))
        assignees = _members(self.tenant, data["assignees"], "assignees") if "assignees" in data else None
        with transaction.atomic():
            tasks = services.tasks_split(
                tenant=self.tenant, project=project, size=size, items=items, actor=request.user
            )
            if assignees:
                services.tasks_assign(tenant=self.tenant, tasks=tasks, assignees=assignees, actor=request.user)
        tasks = task_list(self.tenant, project).filter(pk__in=[task.pk for task in tasks])
        return Response(TaskSplitOutput({"tasks": tasks}).data, status=status.HTTP_201_CREATED)


class TaskDetailApi(TenantAPIView):
    @extend_schema(
        tags=["tasks"],
        operation_id="tasks_retrieve",
        description="A task with its progress; annotators reach only their own tasks.",
        responses={200: TaskOutput},
    )
    def get(self, request: Request, org_slug: str, task_id: int) -> Response:
        return Response(TaskOutput(task_get(self.tenant, task_id)).data)

    @extend_schema(
        tags=["tasks"],
        operation_id="tasks_update",
        description="Assign, reassign or unassign the task (`assignee`, managers and owners), submit it "
        "(`state: submitted`, its annotator) or review it (`state: accepted | rejected`, reviewers and above). "
        "Both in one request are applied together or not at all.",
        request=TaskUpdateInput,
        responses={200: TaskOutput, 400: ErrorOutput},
    )
    def patch(self, request: Request, org_slug: str, task_id: int) -> Response:
        task = task_get(self.tenant, task_id)
        data = self.parse(TaskUpdateInput)
        with transaction.atomic():
            if "assignee" in data:
                assignee = (
                    None if data["assignee"] is None else _members(self.tenant, [data["assignee"]], "assignee")[0]
                )
                services.task_assign(tenant=self.tenant, task=task, assignee=assignee, actor=request.user)
            state = data.get("state")
            if state == "submitted":
                services.task_submit(tenant=self.tenant, task=task, actor=request.user)
            elif state in ("accepted", "rejected"):
                services.task_review(tenant=self.tenant, task=task, accept=state == "accepted", actor=request.user)
        return Response(TaskOutput(task_get(self.tenant, task.pk)).data)

    @extend_schema(
        tags=["tasks"],
        operation_id="tasks_destroy",
        description="Delete the task (managers and owners); its items go back to the pool of items in no task.",
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, org_slug: str, task_id: int) -> Response:
        services.task_delete(tenant=self.tenant, task=task_get(self.tenant, task_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyTaskListApi(TenantAPIView):
    @extend_schema(
        tags=["tasks"],
        operation_id="tasks_mine",
        description="The caller's tasks, with their progress.",
        responses={200: TaskOutput(many=True)},
    )
    def get(self, request: Request, org_slug: str) -> Response:
        return self.paginated(my_tasks(self.tenant), TaskOutput)
