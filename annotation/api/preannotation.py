"""Starting an automatic pre-annotation job on a project (managers and owners)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.selectors import project_get
from inference import preannotation
from platform_core.api import ErrorOutput, TenantAPIView
from platform_core.member_apis import JobOutput
from platform_core.models import Role


class PreannotateOptionsInput(serializers.Serializer):
    """The automatic method's generator settings; each defaults to what ``OPTIONS`` says."""

    points_per_side = serializers.IntegerField(required=False, help_text=preannotation.OPTIONS["points_per_side"].help)
    pred_iou_thresh = serializers.FloatField(required=False, help_text=preannotation.OPTIONS["pred_iou_thresh"].help)
    stability_score_thresh = serializers.FloatField(
        required=False, help_text=preannotation.OPTIONS["stability_score_thresh"].help
    )
    box_nms_thresh = serializers.FloatField(required=False, help_text=preannotation.OPTIONS["box_nms_thresh"].help)
    min_mask_region_area = serializers.IntegerField(
        required=False, help_text=preannotation.OPTIONS["min_mask_region_area"].help
    )
    max_objects = serializers.IntegerField(required=False, help_text=preannotation.OPTIONS["max_objects"].help)


class PreannotateInput(serializers.Serializer):
    model = serializers.CharField(
        help_text="A SAM 2 model key with a checkpoint on the server (`tiny`, `small`, `base_plus`, `large`), or "
        "`opencv`, the classical fallback, for the `boxes` method only."
    )
    method = serializers.ChoiceField(
        choices=list(preannotation.METHODS.items()),
        help_text="`automatic`: every object SAM 2 finds, onto `label`. `boxes`: each object of `source_label` "
        "gives its box as a prompt; the mask lands on `label`.",
    )
    label = serializers.IntegerField(help_text="The mask label the new objects take.")
    source_label = serializers.IntegerField(
        required=False, allow_null=True, help_text="For `boxes`: the label whose objects give the boxes."
    )
    items = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        allow_null=True,
        help_text="Media ids of the project; leave out for the whole project. An empty list is refused.",
    )
    replace = serializers.BooleanField(
        default=False,
        help_text="Replace the proposed objects an earlier pre-annotation of the same method left on `label`; "
        "without it, such items are skipped.",
    )
    options = PreannotateOptionsInput(required=False, help_text="Settings of the automatic method.")


class ProjectPreannotateApi(TenantAPIView):
    @extend_schema(
        tags=["projects"],
        operation_id="projects_preannotate",
        description="Start a background job that runs a model over the project's items (or the ones named) and "
        "saves its masks as pre-annotations (`proposed: true`, source `model`) for people to accept, fix or "
        "delete. Managers and owners. Follow the job with the jobs endpoints; its report lists per item the "
        "objects made or why the item was skipped.",
        request=PreannotateInput,
        responses={201: JobOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, project_id: int) -> Response:
        self.require_role(Role.MANAGER)
        project = project_get(self.tenant, project_id)
        data = self.parse(PreannotateInput)
        # Only the options given: the service fills in the others' defaults.
        options = data.get("options")
        job = preannotation.preannotation_start(
            tenant=self.tenant,
            project=project,
            actor=request.user,
            model=data["model"],
            method=data["method"],
            label=data["label"],
            source_label=data.get("source_label"),
            items=data.get("items"),
            replace=data["replace"],
            options=dict(options) if options is not None else None,
        )
        return Response(JobOutput(job, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)
