"""Media: the gallery list with its filters, uploads of one or more files, one item, deletion."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch, reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotation import media_services
from annotation.models import MediaItem
from annotation.selectors import media_filtered, media_get, project_get
from platform_core.api import TenantAPIView, max_files_per_request
from platform_core.models import Role


def _url(request: Request, name: str, org_slug: str, media_id: int) -> str | None:
    try:
        return request.build_absolute_uri(reverse(name, kwargs={"org_slug": org_slug, "media_id": media_id}))
    except NoReverseMatch:
        return None


def _frame_url(request: Request, org_slug: str, media_id: int) -> str:
    kwargs = {"org_slug": org_slug, "video_id": media_id, "frame": 0}
    return request.build_absolute_uri(reverse("media_frame", kwargs=kwargs))


class MediaOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    name = serializers.CharField(source="original_name", help_text="The uploaded file's name.")
    kind = serializers.CharField(help_text="`image` or `video`.")
    state = serializers.CharField(
        help_text="`ready`; a video is `processing` while its frames are extracted, `failed` if that failed."
    )
    state_detail = serializers.CharField(help_text="Why a video's frames could not be extracted; empty otherwise.")
    frame_count = serializers.IntegerField(
        allow_null=True, help_text="A video's frames (an estimate while processing); null for images."
    )
    fps = serializers.FloatField(allow_null=True, help_text="A video's frame rate; null for images.")
    duration_s = serializers.FloatField(allow_null=True, help_text="A video's length in seconds; null for images.")
    frame_url = serializers.SerializerMethodField(
        help_text="A ready video's frames as JPEG: replace `{n}` with 0 … frame_count − 1. Null otherwise."
    )
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    size_bytes = serializers.IntegerField()
    content_type = serializers.CharField()
    file = serializers.SerializerMethodField(help_text="The stored file (signed-in members of the organisation).")
    thumbnail = serializers.SerializerMethodField(help_text="A small WebP preview; null when there is none.")
    task = serializers.IntegerField(source="task_id", allow_null=True)
    done = serializers.SerializerMethodField(help_text="Saved as finished by an annotator.")
    answers = serializers.DictField(
        child=serializers.CharField(), help_text="Answers to the per-item questions: {question id: choice}."
    )
    created_at = serializers.DateTimeField()

    def get_file(self, item: MediaItem) -> str | None:
        return _url(self.context["request"], "media_file", self.context["tenant"].org.slug, item.pk)

    def get_thumbnail(self, item: MediaItem) -> str | None:
        # An image stored before thumbnails existed gets its thumbnail made on the first request.
        if not item.thumbnail and item.kind != MediaItem.Kind.IMAGE:
            return None
        return _url(self.context["request"], "media_thumbnail", self.context["tenant"].org.slug, item.pk)

    def get_frame_url(self, item: MediaItem) -> str | None:
        if item.kind != MediaItem.Kind.VIDEO or item.state != MediaItem.State.READY:
            return None
        url = _frame_url(self.context["request"], self.context["tenant"].org.slug, item.pk)
        return url.removesuffix("/0.jpg") + "/{n}.jpg"

    def get_done(self, item: MediaItem) -> bool:
        return item.done_at is not None


class MediaUploadInput(serializers.Serializer):
    file = serializers.ListField(child=serializers.FileField(), help_text="One or more files, each in a `file` field.")


class RefusedFileOutput(serializers.Serializer):
    name = serializers.CharField(help_text="The file's name as uploaded.")
    code = serializers.CharField(
        help_text="Why, for programs: `empty`, `not_an_image`, `not_a_video`, `too_large`, `too_long`, …"
    )
    error = serializers.CharField(help_text="Why, for people.")


class MediaUploadOutput(serializers.Serializer):
    created = MediaOutput(many=True)
    refused = RefusedFileOutput(many=True)


UPLOAD_DESCRIPTION = f"""Upload one or more images or videos (managers and owners): a multipart body with
one `file` field per file, at most {max_files_per_request()} files per request. Every file is checked on
its own (content, not name; byte and pixel limits; images re-encoded on the way in), so one bad file
never stops the others. Videos (MP4, MOV, WebM, Matroska; a project of videos, or of both) keep their
original file; their frames are extracted as JPEG, during the upload for short clips (the item comes
back `ready`) and in a background job otherwise (`processing`, then `ready` or `failed`). The answer
names what was stored and what was refused:

* **201** every file was stored: `{{"created": [items], "refused": []}}`;
* **207** some were stored and some refused: both lists are filled;
* **400** none was stored: `{{"created": [], "refused": [{{"name", "code", "error"}}]}}`, or
  `{{"detail"}}` when the request itself is wrong (no file, too many files)."""


def _refusal(name: str, exc: ValidationError) -> dict[str, str]:
    code = getattr(exc, "code", None) or "invalid"
    return {"name": name, "code": code, "error": " ".join(exc.messages)}


class MediaListApi(TenantAPIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        tags=["media"],
        operation_id="media_list",
        description="The project's items in upload order; annotators get only the items of their own tasks.",
        parameters=[
            OpenApiParameter("done", str, enum=["yes", "no"], description="Finished items, or unfinished ones."),
            OpenApiParameter("label", int, description="Items with at least one object of this label."),
            OpenApiParameter("task", str, description="A task id, or `none` for items in no task."),
            OpenApiParameter("assignee", str, description="A user id, or `none` for items nobody is assigned."),
        ],
        responses={200: MediaOutput(many=True)},
    )
    def get(self, request: Request, org_slug: str, project_id: int) -> Response:
        project = project_get(self.tenant, project_id)
        return self.paginated(media_filtered(self.tenant, project, request.query_params), MediaOutput)

    @extend_schema(
        tags=["media"],
        operation_id="media_upload",
        description=UPLOAD_DESCRIPTION,
        request={"multipart/form-data": MediaUploadInput},
        responses={
            201: OpenApiResponse(MediaUploadOutput, description="Every file was stored."),
            207: OpenApiResponse(MediaUploadOutput, description="Some files were stored, some refused."),
            400: OpenApiResponse(MediaUploadOutput, description="No file was stored."),
        },
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        uploads = request.FILES.getlist("file")
        if not uploads:
            return Response(
                {"detail": "Attach one or more files, each in a `file` field.", "code": "no_file"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if len(uploads) > max_files_per_request():
            return Response(
                {"detail": f"At most {max_files_per_request()} files per request.", "code": "too_many_files"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        created: list[MediaItem] = []
        refused: list[dict[str, str]] = []
        for upload in uploads:
            try:
                # The service reads each upload where it lies (memory or a temporary file), checks its
                # size before reading, and refuses images or videos in a project that does not take them.
                item = media_services.media_create(
                    project=project, name=upload.name or "upload", data=upload, uploaded_by=request.user
                )
                created.append(item)
            except ValidationError as exc:
                refused.append(_refusal(upload.name or "upload", exc))
        body = MediaUploadOutput({"created": created, "refused": refused}, context=self.get_serializer_context()).data
        if not created:
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_207_MULTI_STATUS if refused else status.HTTP_201_CREATED)


class MediaDetailApi(TenantAPIView):
    @extend_schema(tags=["media"], operation_id="media_retrieve", responses={200: MediaOutput})
    def get(self, request: Request, org_slug: str, media_id: int) -> Response:
        item = media_get(self.tenant, media_id)
        return Response(MediaOutput(item, context=self.get_serializer_context()).data)

    @extend_schema(
        tags=["media"],
        operation_id="media_destroy",
        description="Delete an item with its file, thumbnail, frames and annotations (managers and owners).",
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, org_slug: str, media_id: int) -> Response:
        self.require_role(Role.MANAGER)
        # The row goes with its annotations; annotation.signals removes the file and thumbnail from
        # storage once the deletion has committed (as for the gallery's and a project's deletions).
        media_get(self.tenant, media_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
