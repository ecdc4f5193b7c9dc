"""Projects: list with progress, create, read, change, delete."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.models import Project
from annotation.projects import services
from annotation.selectors import project_get, project_list_for
from platform_core.api import ErrorOutput, TenantAPIView
from platform_core.models import Role
from platform_core.tenancy import get_for_org_or_404


class ProjectInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    media_type = serializers.ChoiceField(choices=Project.MediaType.choices, required=False)


class ProjectOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    media_type = serializers.ChoiceField(choices=Project.MediaType.choices)
    media_count = serializers.IntegerField(help_text="Items in the project.")
    done_count = serializers.IntegerField(help_text="Items saved as finished.")
    label_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()


def _with_counts(view: TenantAPIView, project_id: int) -> Project:
    # The same counts as the list, for one project.
    return get_for_org_or_404(project_list_for(view.tenant), view.tenant.org, pk=project_id)


class ProjectListApi(TenantAPIView):
    @extend_schema(tags=["projects"], operation_id="projects_list", responses={200: ProjectOutput(many=True)})
    def get(self, request: Request, org_slug: str) -> Response:
        return self.paginated(project_list_for(self.tenant).order_by("name", "id"), ProjectOutput)

    @extend_schema(
        tags=["projects"],
        operation_id="projects_create",
        description="Create a project (managers and owners).",
        request=ProjectInput,
        responses={201: ProjectOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str) -> Response:
        self.require_role(Role.MANAGER)
        data = self.parse(ProjectInput)
        project = services.project_create(organization=self.tenant.org, created_by=request.user, **data)
        return Response(ProjectOutput(_with_counts(self, project.pk)).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(TenantAPIView):
    @extend_schema(tags=["projects"], operation_id="projects_retrieve", responses={200: ProjectOutput})
    def get(self, request: Request, org_slug: str, project_id: int) -> Response:
        return Response(ProjectOutput(_with_counts(self, project_id)).data)

    @extend_schema(
        tags=["projects"],
        operation_id="projects_update",
        description="Change a project's name, description or media type (managers and owners). The media "
        "type cannot exclude media the project already holds.",
        request=ProjectInput,
        responses={200: ProjectOutput, 400: ErrorOutput},
    )
    def patch(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        services.project_update(project=project, **self.parse(ProjectInput, partial=True))
        return Response(ProjectOutput(_with_counts(self, project.pk)).data)

    @extend_schema(
        tags=["projects"],
        operation_id="projects_destroy",
        description="Delete a project with its labels, media, tasks and annotations (managers and owners). "
        "A project that holds media is deleted only with `?confirm=<the project's name>`; without it the "
        "answer is 400 with `code: confirm`.",
        parameters=[
            OpenApiParameter("confirm", str, description="The project's exact name; required when it holds media.")
        ],
        responses={204: OpenApiResponse(description="Deleted."), 400: ErrorOutput},
    )
    def delete(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        services.project_delete(project=project, confirm_name=request.query_params.get("confirm"))
        return Response(status=status.HTTP_204_NO_CONTENT)
