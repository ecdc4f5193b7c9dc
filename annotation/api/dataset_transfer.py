"""Datasets into a project (managers and owners): importing a COCO or YouTube-VIS file or zip and
merging other projects in, as background jobs; and the project's saved train / val / test splits."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.datasets.coco_reading import max_json_bytes
from annotation.datasets.import_job import dataset_import_start
from annotation.datasets.import_mapping import IMPORT_FORMATS
from annotation.datasets.merge import MAX_SOURCES, dataset_merge_start
from annotation.datasets.splits import SUBSETS, dataset_split_create, split_counts, split_list
from annotation.models import DatasetSplit
from annotation.selectors import project_get
from platform_core.api import ErrorOutput, TenantAPIView
from platform_core.member_apis import JobOutput
from platform_core.models import Role


class ImportInput(serializers.Serializer):
    file = serializers.FileField(
        help_text="A COCO or YouTube-VIS file (`.json`, at most the platform's cap, 200 MB by default), or a zip "
        "of images with one COCO file (the platform's own export with images is such a zip)."
    )
    format = serializers.ChoiceField(
        choices=list(IMPORT_FORMATS.items()),
        required=False,
        help_text="What the file is: `coco` or `youtube-vis`. Left out: the file says (a JSON object with "
        "`videos` and no `images` is YouTube-VIS).",
    )
    create_labels = serializers.BooleanField(
        default=False,
        help_text="Create labels (with the category's colour and questions) for categories the project lacks; "
        "without it their annotations are skipped and reported.",
    )
    as_accepted = serializers.BooleanField(
        default=False, help_text="Import the objects as accepted, not as pre-annotations awaiting a person."
    )


IMPORT_DESCRIPTION = f"""Start a background job that imports a COCO or YouTube-VIS dataset into the project
(managers and owners); a multipart body with the file in `file`. Follow the job with the jobs endpoints.

* A **COCO file** puts its masks (compressed RLE, uncompressed RLE, or polygons; a `bbox` alone gives a
  box) on the project's items of the same file name (the item's original name, or its last path part),
  as pre-annotations awaiting a person unless `as_accepted`.
* A **zip** of images with one COCO file (`annotations/instances.json` when it holds several) first
  adds the images the COCO file names as new items, then their annotations.
* Categories go to the labels of the same name (case does not matter). The platform's own extra keys
  are read back: category `color` and `questions`, annotation and image `attributes` become answers
  (by question text) where the value is one of the question's choices.
* A **YouTube-VIS file** puts each track's masks on the project's video whose name (without its extension) is
  the folder of the video's `file_names`, as a new track with a fresh track number, one object per frame
  where the track is present; a matched video whose frame count or size differs refuses the file.
* Everything is checked before anything is written, then written in one transaction: a malformed file
  makes the job fail with a message naming the first problems (with their JSON paths and ids), and
  nothing of it is imported. The report of a job that succeeded counts matched and created items and
  imported annotations, and lists what was skipped and which answers could not be mapped.

A COCO file alone may have {max_json_bytes()} bytes (setting `DATASET_IMPORT_MAX_JSON_BYTES`); inside a
zip it is also bound by the per-file upload limit. A file that is plainly neither (not a zip, not a JSON
object, too large) is refused at once with a 400."""


class ProjectImportApi(TenantAPIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        tags=["projects"],
        operation_id="projects_import",
        description=IMPORT_DESCRIPTION,
        request={"multipart/form-data": ImportInput},
        responses={201: JobOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        data = self.parse(ImportInput)
        job = dataset_import_start(
            tenant=self.tenant,
            project=project,
            actor=request.user,
            uploaded_file=data["file"],
            create_labels=data["create_labels"],
            proposed=not data["as_accepted"],
            format=data.get("format"),
        )
        return Response(JobOutput(job, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)


class MergeInput(serializers.Serializer):
    sources = serializers.ListField(
        child=serializers.IntegerField(),
        max_length=MAX_SOURCES,
        help_text="Ids of the organisation's projects whose items are copied into this one, in this order.",
    )
    mapping = serializers.DictField(
        child=serializers.IntegerField(),
        required=False,
        help_text="`{source label id: target label id}`; labels not named here go to the target's label of the "
        "same name.",
    )
    create_labels = serializers.BooleanField(
        default=False,
        help_text="Create the labels (and questions) the target lacks; without it, annotations of unmapped "
        "labels are skipped and reported.",
    )


class ProjectMergeApi(TenantAPIView):
    @extend_schema(
        tags=["projects"],
        operation_id="projects_merge",
        description="Start a background job that copies every item of the `sources` projects (same organisation) "
        "into this one, with its answers and annotations; the sources stay as they are (managers and owners). "
        "The report counts items and annotations per source and lists what could not be mapped.",
        request=MergeInput,
        responses={201: JobOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        data = self.parse(MergeInput)
        job = dataset_merge_start(
            tenant=self.tenant,
            project=project,
            actor=request.user,
            sources=data["sources"],
            mapping=data.get("mapping"),
            create_labels=data["create_labels"],
        )
        return Response(JobOutput(job, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)


class SplitInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="Unique in the project, e.g. `v1`.")
    ratios = serializers.ListField(
        child=serializers.FloatField(min_value=0, max_value=1),
        min_length=3,
        max_length=3,
        help_text="Shares of train, val and test, adding up to 1, e.g. `[0.8, 0.1, 0.1]`.",
    )
    seed = serializers.IntegerField(default=0, min_value=0, help_text="The same seed gives the same split.")


class SplitOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    seed = serializers.IntegerField()
    ratios = serializers.DictField(child=serializers.FloatField(), help_text="`{train, val, test}` shares.")
    counts = serializers.SerializerMethodField(help_text="Items per subset: `{train, val, test}`.")
    created_at = serializers.DateTimeField()

    def get_counts(self, split: DatasetSplit) -> dict[str, int]:
        if all(hasattr(split, subset) for subset in SUBSETS):
            return {subset: getattr(split, subset) for subset in SUBSETS}
        return split_counts(split)


class ProjectSplitListApi(TenantAPIView):
    @extend_schema(
        tags=["projects"],
        operation_id="projects_splits",
        description="The project's saved splits, newest first (managers and owners). Export one subset with the "
        "export endpoint's `split` and `subset`.",
        responses={200: SplitOutput(many=True)},
    )
    def get(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        return self.paginated(split_list(project), SplitOutput)

    @extend_schema(
        tags=["projects"],
        operation_id="projects_split_create",
        description="Split the project's items into train / val / test by `ratios` with `seed`, stratified by "
        "each item's most frequent label, and save the split (managers and owners). Deterministic: the same "
        "items, objects, ratios and seed give the same split.",
        request=SplitInput,
        responses={201: SplitOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        data = self.parse(SplitInput)
        split = dataset_split_create(
            project=project, name=data["name"], ratios=data["ratios"], seed=data["seed"], actor=request.user
        )
        return Response(SplitOutput(split).data, status=status.HTTP_201_CREATED)
