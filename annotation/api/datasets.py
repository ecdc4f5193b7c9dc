"""Exporting a project's dataset as a background job (managers and owners)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.datasets.export_job import dataset_export_start
from annotation.datasets.options import ALL, COCO, FORMATS, ONLY, SUBSETS, ExportOptions
from annotation.selectors import project_get
from platform_core.api import ErrorOutput, TenantAPIView
from platform_core.member_apis import JobOutput
from platform_core.models import Role


class ExportInput(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=list(FORMATS.items()),
        default=COCO,
        help_text="`coco`: COCO JSON (`annotations/instances.json` in a zip with images). `masks`: a zip of "
        "semantic and instance PNGs per image, `masks/instances.json` and `classes.json`. `youtube-vis` / "
        "`coco-video`: JSON of the project's videos, per track (a zip with `JPEGImages/` when `include_images`); "
        "`davis`: a zip of palette PNGs per frame. Video reports count videos, frames, tracks and masks.",
    )
    polygons = serializers.BooleanField(
        default=False, help_text="COCO segmentations as polygons instead of the stored compressed RLE."
    )
    include_images = serializers.BooleanField(
        default=False, help_text="Zip the stored images in, under `images/`, byte for byte."
    )
    only = serializers.ChoiceField(
        choices=list(ONLY.items()), default=ALL, help_text="`accepted`: only the items of accepted tasks."
    )
    include_proposed = serializers.BooleanField(
        default=False,
        help_text="Keep pre-annotations awaiting a person (marked `proposed`); left out and counted otherwise.",
    )
    split = serializers.IntegerField(
        required=False, min_value=1, help_text="Only the items of this saved split (see the project's splits)."
    )
    subset = serializers.ChoiceField(
        choices=list(SUBSETS), required=False, help_text="With `split`: only the items of this subset of it."
    )


class ProjectExportApi(TenantAPIView):
    @extend_schema(
        tags=["projects"],
        operation_id="projects_export",
        description="Start a background job that exports the project (managers and owners). Follow it with "
        "the jobs endpoints; when it has succeeded, its `result` is the download URL of the file (a `.json`, "
        "or a `.zip` for mask PNGs or with images) and its `report` counts images, annotations and "
        "categories and what was left out (videos, pre-annotations awaiting a person, items outside "
        "accepted tasks).",
        request=ExportInput,
        responses={201: JobOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        options = ExportOptions.parse(self.parse(ExportInput))
        job = dataset_export_start(tenant=self.tenant, project=project, actor=request.user, options=options)
        return Response(JobOutput(job, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)
