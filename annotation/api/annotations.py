"""Annotations of one item: list and create, read, change and delete one, with versions (a stale
write is a 409 carrying the stored annotation); accept one pre-annotation, or all of an item's."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.annotations import services
from annotation.annotations.payloads import annotation_payload
from annotation.annotations.selectors import annotation_get, annotation_list, label_for_item
from annotation.models import Annotation
from annotation.selectors import media_get
from platform_core.api import ErrorOutput, TenantAPIView

INT32 = {"min_value": -(2**31), "max_value": 2**31 - 1}


class RleSchema(serializers.Serializer):
    size = serializers.ListField(
        child=serializers.IntegerField(), min_length=2, max_length=2, help_text="[height, width] of the item."
    )
    counts = serializers.CharField(help_text="COCO compressed RLE counts, as pycocotools writes them.")


@extend_schema_field(RleSchema)
class RleField(serializers.JSONField):
    """Any JSON on the way in: the service checks it and says precisely what is wrong."""


class AnnotationOutput(serializers.Serializer):
    """Documents ``annotation_payload``, which is what every answer carries."""

    id = serializers.IntegerField()
    media = serializers.IntegerField()
    label = serializers.IntegerField(help_text="A label id.")
    frame = serializers.IntegerField(allow_null=True, help_text="The video frame; null for images.")
    track = serializers.IntegerField(allow_null=True, help_text="Groups one object's masks across video frames.")
    rle = RleSchema(help_text="The mask, COCO compressed RLE at the item's size.")
    bbox = serializers.ListField(child=serializers.FloatField(), help_text="[x, y, width, height] of the mask.")
    area = serializers.IntegerField(help_text="Pixels in the mask.")
    drawn = serializers.DictField(help_text="How it was drawn: polygon vertices, box corners, brush strokes.")
    answers = serializers.DictField(child=serializers.CharField(), help_text="{question id: choice}.")
    source = serializers.ChoiceField(choices=Annotation.Source.choices)
    source_detail = serializers.DictField(help_text="Model key and prompts, import file, …")
    proposed = serializers.BooleanField(
        help_text="A model's pre-annotation that no person has accepted or changed yet; accepting it, or "
        "changing it, clears this."
    )
    author = serializers.CharField(allow_null=True, help_text="Username of who last wrote it.")
    z_order = serializers.IntegerField(help_text="Drawing order: higher is on top.")
    version = serializers.IntegerField(help_text="Send it back with a change or a deletion.")
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: Annotation) -> dict[str, Any]:
        return annotation_payload(instance)


class ConflictOutput(serializers.Serializer):
    code = serializers.CharField(help_text="`conflict`.")
    detail = serializers.CharField()
    current = AnnotationOutput(help_text="The annotation as it is stored now.")


RLE_HELP = (
    'The mask: `{"size": [height, width], "counts": "…"}` at the item\'s size, COCO compressed RLE as '
    "pycocotools writes it (column by column); COCO's uncompressed form, counts as a list of run lengths, "
    "is accepted too and stored compressed. An empty mask is refused."
)


class AnnotationCreateInput(serializers.Serializer):
    label = serializers.IntegerField(help_text="A label of the item's project (not a classification label).")
    rle = RleField(help_text=RLE_HELP)
    frame = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, help_text="The video frame; leave out for images."
    )
    track = serializers.IntegerField(
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Videos: the object this mask belongs to across frames; left out, a new track starts.",
    )
    drawn = serializers.JSONField(required=False, help_text="How it was drawn (an object).")
    answers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, allow_null=True),
        required=False,
        help_text="Answers to the label's questions: {question id: choice}.",
    )
    source = serializers.ChoiceField(choices=Annotation.Source.choices, required=False)
    source_detail = serializers.JSONField(required=False, help_text="Model key and prompts, import file (an object).")
    z_order = serializers.IntegerField(
        required=False, help_text="Drawing order; on top of the others if left out.", **INT32
    )
    proposed = serializers.BooleanField(
        required=False,
        help_text="Store it as a pre-annotation awaiting a person (for pipelines that upload a model's "
        "results); people accept it, fix it or delete it.",
    )


class AnnotationUpdateInput(AnnotationCreateInput):
    version = serializers.IntegerField(min_value=1, help_text="The version you loaded.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A change clears ``proposed`` by itself; nothing sets it again on an existing object.
        del self.fields["proposed"]
        for name, field in self.fields.items():
            if name != "version":
                field.required = False

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if set(attrs) == {"version"}:
            raise serializers.ValidationError("Give at least one field to change besides `version`.")
        return attrs


class AnnotationDeleteInput(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The version you loaded.")


class AnnotationAcceptInput(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The version you loaded.")


class AcceptedOutput(serializers.Serializer):
    accepted = AnnotationOutput(many=True, help_text="The pre-annotations accepted, at their new versions.")


def _conflict(exc: services.VersionConflict) -> Response:
    body = {
        "code": "conflict",
        "detail": f"Someone changed this annotation since you loaded it; it is now at version "
        f"{exc.current.version}. Reload it, or apply your change again to the current version.",
        "current": annotation_payload(exc.current),
    }
    return Response(body, status=status.HTTP_409_CONFLICT)


class AnnotationListApi(TenantAPIView):
    @extend_schema(
        tags=["annotations"],
        operation_id="annotations_list",
        description="The item's annotations, bottom to top. Annotators reach only the items of their own tasks.",
        parameters=[OpenApiParameter("frame", int, description="Only this video frame's annotations.")],
        responses={200: AnnotationOutput(many=True), 400: ErrorOutput},
    )
    def get(self, request: Request, org_slug: str, media_id: int) -> Response:
        media = media_get(self.tenant, media_id)
        frame = request.query_params.get("frame")
        if frame is not None and not (frame.isdigit() and len(frame) < 10):
            return Response({"frame": ["Give the frame as a whole number."]}, status=status.HTTP_400_BAD_REQUEST)
        annotations = annotation_list(self.tenant, media, frame=None if frame is None else int(frame))
        return self.paginated(annotations, AnnotationOutput)

    @extend_schema(
        tags=["annotations"],
        operation_id="annotations_create",
        description="Add an object to the item, at version 1.",
        request=AnnotationCreateInput,
        responses={201: AnnotationOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, media_id: int) -> Response:
        media = media_get(self.tenant, media_id)
        data = self.parse(AnnotationCreateInput)
        data["label"] = label_for_item(self.tenant, media, data["label"])
        annotation = services.annotation_create(tenant=self.tenant, media=media, author=request.user, **data)
        return Response(annotation_payload(annotation), status=status.HTTP_201_CREATED)


class AnnotationDetailApi(TenantAPIView):
    @extend_schema(tags=["annotations"], operation_id="annotations_retrieve", responses={200: AnnotationOutput})
    def get(self, request: Request, org_slug: str, media_id: int, annotation_id: int) -> Response:
        media = media_get(self.tenant, media_id)
        return Response(annotation_payload(annotation_get(self.tenant, media, annotation_id)))

    @extend_schema(
        tags=["annotations"],
        operation_id="annotations_update",
        description="Change some of the annotation's fields. `version` is the version you loaded: when the "
        "annotation has changed since, nothing is stored and the answer is a 409 carrying the current one.",
        request=AnnotationUpdateInput,
        responses={
            200: AnnotationOutput,
            400: ErrorOutput,
            409: OpenApiResponse(ConflictOutput, description="Stale version."),
        },
    )
    def patch(self, request: Request, org_slug: str, media_id: int, annotation_id: int) -> Response:
        media = media_get(self.tenant, media_id)
        annotation = annotation_get(self.tenant, media, annotation_id)
        data = self.parse(AnnotationUpdateInput)
        version = data.pop("version")
        if "label" in data:
            data["label"] = label_for_item(self.tenant, media, data["label"])
        try:
            annotation = services.annotation_update(
                tenant=self.tenant, annotation=annotation, expected_version=version, author=request.user, **data
            )
        except services.VersionConflict as exc:
            return _conflict(exc)
        return Response(annotation_payload(annotation))

    @extend_schema(
        tags=["annotations"],
        operation_id="annotations_destroy",
        description="Delete the annotation. Give the version you loaded as `version` in the body or the query "
        "string; when the annotation has changed since, nothing is deleted and the answer is a 409.",
        parameters=[OpenApiParameter("version", int, description="The version you loaded (or in the body).")],
        request=AnnotationDeleteInput,
        responses={
            204: OpenApiResponse(description="Deleted."),
            400: ErrorOutput,
            409: OpenApiResponse(ConflictOutput, description="Stale version."),
        },
    )
    def delete(self, request: Request, org_slug: str, media_id: int, annotation_id: int) -> Response:
        media = media_get(self.tenant, media_id)
        annotation = annotation_get(self.tenant, media, annotation_id)
        body = request.data if isinstance(request.data, dict) else {}
        version = request.query_params.get("version", body.get("version"))
        checked = AnnotationDeleteInput(data={"version": version})
        checked.is_valid(raise_exception=True)
        try:
            services.annotation_delete(
                tenant=self.tenant,
                annotation=annotation,
                expected_version=checked.validated_data["version"],
                actor=request.user,
            )
        except services.VersionConflict as exc:
            return _conflict(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnnotationAcceptApi(TenantAPIView):
    @extend_schema(
        tags=["annotations"],
        operation_id="annotations_accept",
        description="Accept a pre-annotation as it is: it is no longer `proposed`, its version grows by one "
        "and you become its author. `version` is the version you loaded (409 when it has changed since); an "
        "annotation that is not proposed is a 400 with `code: not_proposed`.",
        request=AnnotationAcceptInput,
        responses={
            200: AnnotationOutput,
            400: ErrorOutput,
            409: OpenApiResponse(ConflictOutput, description="Stale version."),
        },
    )
    def post(self, request: Request, org_slug: str, media_id: int, annotation_id: int) -> Response:
        media = media_get(self.tenant, media_id)
        annotation = annotation_get(self.tenant, media, annotation_id)
        version = self.parse(AnnotationAcceptInput)["version"]
        try:
            annotation = services.annotation_accept(
                tenant=self.tenant, annotation=annotation, expected_version=version, actor=request.user
            )
        except services.VersionConflict as exc:
            return _conflict(exc)
        return Response(annotation_payload(annotation))


class AnnotationAcceptAllApi(TenantAPIView):
    @extend_schema(
        tags=["annotations"],
        operation_id="annotations_accept_all",
        description="Accept every pre-annotation of the item as it stands (none is fine: the list is empty).",
        request=None,
        responses={200: AcceptedOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, media_id: int) -> Response:
        media = media_get(self.tenant, media_id)
        accepted = services.annotation_accept_all(tenant=self.tenant, media=media, actor=request.user)
        return Response({"accepted": [annotation_payload(annotation) for annotation in accepted]})
