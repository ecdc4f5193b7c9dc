"""REST endpoints for an organisation's members, invitations and jobs, with their routes
(``urlpatterns``, included under api/v1/o/<org_slug>/ by platform_core.urls).

The rules are the members page's and the jobs page's: role changes, removals and invitations go
through platform_core.members (managers grant only roles below their own, nobody changes their own
membership); an invitation link is a credential, so only those who may grant its role see it."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.urls import path, reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from platform_core import members
from platform_core.api import ErrorOutput, TenantAPIView
from platform_core.jobs.core import job_display_state
from platform_core.jobs.selectors import access_job, job_list_for, job_may_control
from platform_core.jobs.services import job_cancel, job_retry
from platform_core.models import Invitation, Job, Membership, Role
from platform_core.permissions import grantable_roles
from platform_core.tenancy import get_for_org_or_404

# --- members ----------------------------------------------------------------------------------


class MemberOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The membership's id (members/<id>/).")
    user = serializers.IntegerField(source="user_id", help_text="The user's id (task assignees are user ids).")
    username = serializers.CharField(source="user.username")
    email = serializers.SerializerMethodField(help_text="Shown to owners and managers; empty for other members.")
    role = serializers.ChoiceField(choices=Role.choices)
    created_at = serializers.DateTimeField()

    def get_email(self, membership: Membership) -> str:
        return membership.user.email if self.context["tenant"].can_manage else ""


class MemberRoleInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


def _membership(view: TenantAPIView, membership_id: int) -> Membership:
    return get_for_org_or_404(Membership.objects.select_related("user"), view.tenant.org, pk=membership_id)


class MemberListApi(TenantAPIView):
    @extend_schema(tags=["members"], operation_id="members_list", responses={200: MemberOutput(many=True)})
    def get(self, request: Request, org_slug: str) -> Response:
        memberships = Membership.objects.for_org(self.tenant.org).select_related("user").order_by("user__username")
        return self.paginated(memberships, MemberOutput)


class MemberDetailApi(TenantAPIView):
    @extend_schema(tags=["members"], operation_id="members_retrieve", responses={200: MemberOutput})
    def get(self, request: Request, org_slug: str, membership_id: int) -> Response:
        return Response(MemberOutput(_membership(self, membership_id), context=self.get_serializer_context()).data)

    @extend_schema(
        tags=["members"],
        operation_id="members_update",
        description="Change a member's role: owners grant any role, managers only roles below their own, to "
        "members ranked below them; nobody changes their own.",
        request=MemberRoleInput,
        responses={200: MemberOutput, 400: ErrorOutput},
    )
    def patch(self, request: Request, org_slug: str, membership_id: int) -> Response:
        self.require_role(Role.MANAGER)
        membership = _membership(self, membership_id)
        role = self.parse(MemberRoleInput)["role"]
        membership = members.membership_change_role(
            tenant=self.tenant, actor=request.user, membership=membership, role=role
        )
        return Response(MemberOutput(membership, context=self.get_serializer_context()).data)

    @extend_schema(
        tags=["members"],
        operation_id="members_destroy",
        description="Remove a member (same rules as role changes); their tasks stay, unassigned.",
        responses={204: OpenApiResponse(description="Removed.")},
    )
    def delete(self, request: Request, org_slug: str, membership_id: int) -> Response:
        self.require_role(Role.MANAGER)
        members.membership_remove(tenant=self.tenant, actor=request.user, membership=_membership(self, membership_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invitations ------------------------------------------------------------------------------


class InvitationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.CharField(help_text="Empty for an invitation shared as a link.")
    role = serializers.ChoiceField(choices=Role.choices)
    invited_by = serializers.CharField(source="invited_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField(
        help_text="The accept link (signed, single-use); null where the caller may not grant the invitation's role."
    )

    def get_url(self, invitation: Invitation) -> str | None:
        if Role(invitation.role) not in self.context["grantable"]:
            return None
        return members.invitation_url(invitation, request=self.context["request"])


class InvitationInput(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_blank=True, help_text="Empty or absent: a link to share.")
    role = serializers.ChoiceField(choices=Role.choices)


class _InvitationView(TenantAPIView):
    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "grantable": grantable_roles(self.request.user, self.tenant.org)}

    def require_granting(self) -> None:
        if not grantable_roles(self.request.user, self.tenant.org):
            raise PermissionDenied("Only owners and managers manage invitations.")


class InvitationListApi(_InvitationView):
    @extend_schema(
        tags=["invitations"],
        operation_id="invitations_list",
        description="Open invitations (owners and managers).",
        responses={200: InvitationOutput(many=True)},
    )
    def get(self, request: Request, org_slug: str) -> Response:
        self.require_granting()
        invitations = (
            Invitation.objects.for_org(self.tenant.org).filter(accepted_at__isnull=True).select_related("invited_by")
        )
        return self.paginated(invitations, InvitationOutput)

    @extend_schema(
        tags=["invitations"],
        operation_id="invitations_create",
        description="Invite someone with a role (owners and managers, for roles they may grant): with `email` "
        "the link is sent there; without, share the returned `url` yourself. The link expires and works once.",
        request=InvitationInput,
        responses={201: InvitationOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str) -> Response:
        self.require_granting()
        invitation = members.invitation_create(
            tenant=self.tenant, actor=request.user, request=request, **self.parse(InvitationInput)
        )
        return Response(
            InvitationOutput(invitation, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )


class InvitationDetailApi(_InvitationView):
    @extend_schema(
        tags=["invitations"],
        operation_id="invitations_destroy",
        description="Revoke an invitation: its link stops working (owners and managers).",
        responses={204: OpenApiResponse(description="Revoked.")},
    )
    def delete(self, request: Request, org_slug: str, invitation_id: int) -> Response:
        self.require_granting()
        invitation = get_for_org_or_404(Invitation, self.tenant.org, pk=invitation_id)
        members.invitation_revoke(tenant=self.tenant, actor=request.user, invitation=invitation)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- jobs -------------------------------------------------------------------------------------


class JobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    project = serializers.IntegerField(source="project_id", allow_null=True)
    state = serializers.CharField(help_text="`queued`, `running`, `succeeded`, `failed` or `cancelled`.")
    display_state = serializers.SerializerMethodField(help_text="The state, or `stalled` for a silent worker.")
    progress_done = serializers.IntegerField()
    progress_total = serializers.IntegerField()
    percent = serializers.IntegerField()
    message = serializers.CharField(help_text="Progress note, or the reason it failed.")
    report = serializers.JSONField(help_text="What the job did, e.g. files imported and skipped with reasons.")
    result = serializers.SerializerMethodField(help_text="The result file's download URL; null when none.")
    attempts = serializers.IntegerField()
    created_by = serializers.IntegerField(source="created_by_id", allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_display_state(self, job: Job) -> str:
        return job_display_state(job)

    def get_result(self, job: Job) -> str | None:
        if not job.result_file:
            return None
        url = reverse("job_result", kwargs={"org_slug": self.context["tenant"].org.slug, "job_id": job.pk})
        return self.context["request"].build_absolute_uri(url)


class JobListApi(TenantAPIView):
    @extend_schema(
        tags=["jobs"],
        operation_id="jobs_list",
        description="Background jobs, newest first; annotators see the jobs they started.",
        responses={200: JobOutput(many=True)},
    )
    def get(self, request: Request, org_slug: str) -> Response:
        return self.paginated(job_list_for(self.tenant), JobOutput)


class JobDetailApi(TenantAPIView):
    @extend_schema(tags=["jobs"], operation_id="jobs_retrieve", responses={200: JobOutput})
    def get(self, request: Request, org_slug: str, job_id: int) -> Response:
        return Response(JobOutput(access_job(self.tenant, job_id), context=self.get_serializer_context()).data)


class _JobControlApi(TenantAPIView):
    action: str

    def post(self, request: Request, org_slug: str, job_id: int) -> Response:
        job = access_job(self.tenant, job_id)
        if not job_may_control(self.tenant, job):
            raise PermissionDenied("Only managers and the member who started a job may cancel or retry it.")
        job = (job_cancel if self.action == "cancel" else job_retry)(job=job, actor=request.user)
        return Response(JobOutput(job, context=self.get_serializer_context()).data)


class JobCancelApi(_JobControlApi):
    action = "cancel"

    @extend_schema(
        tags=["jobs"],
        operation_id="jobs_cancel",
        description="Cancel a queued or running job (managers and owners, and whoever started it).",
        request=None,
        responses={200: JobOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, job_id: int) -> Response:
        return super().post(request, org_slug, job_id)


class JobRetryApi(_JobControlApi):
    action = "retry"

    @extend_schema(
        tags=["jobs"],
        operation_id="jobs_retry",
        description="Queue a failed, cancelled or stalled job again (managers and owners, and whoever started it).",
        request=None,
        responses={200: JobOutput, 400: ErrorOutput},
    )
    def post(self, request: Request, org_slug: str, job_id: int) -> Response:
        return super().post(request, org_slug, job_id)


urlpatterns = [
    path("members/", MemberListApi.as_view(), name="api_member_list"),
    path("members/<int:membership_id>/", MemberDetailApi.as_view(), name="api_member_detail"),
    path("invitations/", InvitationListApi.as_view(), name="api_invitation_list"),
    path("invitations/<int:invitation_id>/", InvitationDetailApi.as_view(), name="api_invitation_detail"),
    path("jobs/", JobListApi.as_view(), name="api_job_list"),
    path("jobs/<int:job_id>/", JobDetailApi.as_view(), name="api_job_detail"),
    path("jobs/<int:job_id>/cancel/", JobCancelApi.as_view(), name="api_job_cancel"),
    path("jobs/<int:job_id>/retry/", JobRetryApi.as_view(), name="api_job_retry"),
]
