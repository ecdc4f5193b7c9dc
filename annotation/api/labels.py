"""Labels (with their questions), their order, and the questions of a project: per object of a
label, or per item (no label)."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.models import Label, Project
from annotation.projects import services
from annotation.selectors import label_get, label_list_with_counts, project_get, question_get
from platform_core.api import ErrorOutput, TenantAPIView
from platform_core.models import Role


class QuestionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.IntegerField(source="label_id", allow_null=True, help_text="Null for a per-item question.")
    text = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField())
    default = serializers.CharField(help_text="Pre-selected answer; empty for none.")
    required = serializers.BooleanField()
    order = serializers.IntegerField()


class QuestionInput(serializers.Serializer):
    label = serializers.IntegerField(
        required=False, allow_null=True, help_text="A label of this project; null or absent for a per-item question."
    )
    text = serializers.CharField(max_length=200)
    choices = serializers.ListField(child=serializers.CharField(allow_blank=True), help_text="At least two.")
    default = serializers.CharField(required=False, allow_blank=True)
    required = serializers.BooleanField(required=False)


class QuestionUpdateInput(serializers.Serializer):
    # A question stays with its label: move it by deleting and creating it again.
    text = serializers.CharField(max_length=200, required=False)
    choices = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)
    default = serializers.CharField(required=False, allow_blank=True)
    required = serializers.BooleanField(required=False)


class LabelOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    color = serializers.CharField(help_text="Hex colour, e.g. #1f77b4.")
    kind = serializers.ChoiceField(choices=Label.Kind.choices)
    order = serializers.IntegerField(help_text="Position; the first nine are the studio's keys 1…9.")
    guidelines = serializers.CharField(help_text="Markdown shown to annotators next to the label.")
    annotation_count = serializers.IntegerField()
    questions = QuestionOutput(many=True, source="questions.all")


class LabelInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    color = serializers.CharField(max_length=7, help_text="Hex colour, e.g. #1f77b4.")
    kind = serializers.ChoiceField(choices=Label.Kind.choices, required=False)
    guidelines = serializers.CharField(required=False, allow_blank=True)


class LabelOrderInput(serializers.Serializer):
    labels = serializers.ListField(child=serializers.IntegerField(), help_text="Every label id of the project, once.")


class LabelOrderOutput(serializers.Serializer):
    labels = serializers.ListField(child=serializers.IntegerField(), help_text="The label ids in their new order.")


class LabelDeleteOutput(serializers.Serializer):
    annotations_deleted = serializers.IntegerField(help_text="How many annotations went with the label.")


def _label_out(project: Project, label_id: int) -> dict[str, Any]:
    return LabelOutput(label_list_with_counts(project).get(pk=label_id)).data


class LabelListApi(TenantAPIView):
    @extend_schema(tags=["labels"], operation_id="labels_list", responses={200: LabelOutput(many=True)})
    def get(self, request: Request, org_slug: str, project_id: int) -> Response:
        project = project_get(self.tenant, project_id)
        return self.paginated(label_list_with_counts(project).order_by("order", "name"), LabelOutput)

    @extend_schema(
        tags=["labels"],
        operation_id="labels_create",
        description="Add a label at the end of the project's order (managers and owners).",
        request=LabelInput,
        responses={201: LabelOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        label = services.label_create(project=project, **self.parse(LabelInput))
        return Response(_label_out(project, label.pk), status=status.HTTP_201_CREATED)


class LabelDetailApi(TenantAPIView):
    @extend_schema(tags=["labels"], operation_id="labels_retrieve", responses={200: LabelOutput})
    def get(self, request: Request, org_slug: str, project_id: int, label_id: int) -> Response:
        project = project_get(self.tenant, project_id)
        label = label_get(self.tenant, project, label_id)
        return Response(_label_out(project, label.pk))

    @extend_schema(
        tags=["labels"],
        operation_id="labels_update",
        description="Rename, recolour, change the kind or the guidelines (managers and owners).",
        request=LabelInput,
        responses={200: LabelOutput, 400: ErrorOutput},
    )
    def patch(self, request: Request, org_slug: str, project_id: int, label_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        label = label_get(self.tenant, project, label_id)
        services.label_update(label=label, **self.parse(LabelInput, partial=True))
        return Response(_label_out(project, label.pk))

    @extend_schema(
        tags=["labels"],
        operation_id="labels_destroy",
        description="Delete a label with its questions and every annotation drawn with it (managers and owners).",
        responses={200: LabelDeleteOutput},
    )
    def delete(self, request: Request, org_slug: str, project_id: int, label_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        count = services.label_delete(label=label_get(self.tenant, project, label_id))
        return Response(LabelDeleteOutput({"annotations_deleted": count}).data)


class LabelOrderApi(TenantAPIView):
    @extend_schema(
        tags=["labels"],
        operation_id="labels_reorder",
        description="Put the project's labels in this order (managers and owners); give every label exactly once.",
        request=LabelOrderInput,
        responses={200: LabelOrderOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        labels = services.label_reorder(project=project, label_ids=self.parse(LabelOrderInput)["labels"])
        return Response(LabelOrderOutput({"labels": [label.pk for label in labels]}).data)


def _question_label(view: TenantAPIView, project: Project, label_id: int | None) -> Label | None:
    if label_id is None:
        return None
    try:
        return label_get(view.tenant, project, label_id)
    except Http404:
        # Missing, of another project or of another organisation: the same answer.
        raise serializers.ValidationError({"label": ["No such label in this project."]}) from None


class QuestionListApi(TenantAPIView):
    @extend_schema(
        tags=["questions"],
        operation_id="questions_list",
        description="The project's questions: per object of a label, then per item (`label` null).",
        responses={200: QuestionOutput(many=True)},
    )
    def get(self, request: Request, org_slug: str, project_id: int) -> Response:
        project = project_get(self.tenant, project_id)
        questions = project.questions.order_by(
            F("label__order").asc(nulls_last=True), F("label_id").asc(nulls_last=True), "order", "id"
        )
        return self.paginated(questions, QuestionOutput)

    @extend_schema(
        tags=["questions"],
        operation_id="questions_create",
        description="Add a single-choice question (managers and owners): about each object of `label`, or "
        "about each item when `label` is null. At least two distinct choices; the default must be one of them.",
        request=QuestionInput,
        responses={201: QuestionOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        data = self.parse(QuestionInput)
        data["label"] = _question_label(self, project, data.get("label"))
        question = services.question_create(project=project, **data)
        return Response(QuestionOutput(question).data, status=status.HTTP_201_CREATED)


class QuestionDetailApi(TenantAPIView):
    @extend_schema(tags=["questions"], operation_id="questions_retrieve", responses={200: QuestionOutput})
    def get(self, request: Request, org_slug: str, project_id: int, question_id: int) -> Response:
        project = project_get(self.tenant, project_id)
        return Response(QuestionOutput(question_get(self.tenant, project, question_id)).data)

    @extend_schema(
        tags=["questions"],
        operation_id="questions_update",
        description="Change a question's text, choices, default or whether it is required (managers and owners).",
        request=QuestionUpdateInput,
        responses={200: QuestionOutput, 400: ErrorOutput},
    )
    def patch(self, request: Request, org_slug: str, project_id: int, question_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        question = question_get(self.tenant, project, question_id)
        question = services.question_update(question=question, **self.parse(QuestionUpdateInput, partial=True))
        return Response(QuestionOutput(question).data)

    @extend_schema(
        tags=["questions"],
        operation_id="questions_destroy",
        description="Delete a question (managers and owners).",
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, org_slug: str, project_id: int, question_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        services.question_delete(question=question_get(self.tenant, project, question_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
