"""REST endpoints for projects, one view per operation."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.selectors import label_list, project_get, project_list_for
from platform_core.api import TenantAPIView


class LabelOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    color = serializers.CharField()
    kind = serializers.CharField()


class ProjectOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()


class ProjectListApi(TenantAPIView):
    def get(self, request: Request, org_slug: str) -> Response:
        projects = project_list_for(self.tenant)
        return Response({"results": ProjectOutput(projects, many=True).data})


class ProjectDetailApi(TenantAPIView):
    def get(self, request: Request, org_slug: str, project_id: int) -> Response:
        project = project_get(self.tenant, project_id)
        data = ProjectOutput(project).data
        data["labels"] = LabelOutput(label_list(project), many=True).data
        data["media_count"] = project.media.count()
        return Response(data)
