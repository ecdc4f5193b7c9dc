"""Organisations, members and invitations in the tenant-scoped admin. Invitations are made and
revoked through the members services, so each gets its signed link and its e-mail."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from platform_core import members
from platform_core.admin_site import managed_orgs
from platform_core.admin_tenancy import TenantModelAdmin, admin_tenant
from platform_core.jobs import admin as jobs_admin  # noqa: F401 - registers JobAdmin
from platform_core.member_views import InvitationForm
from platform_core.models import Invitation, Membership, Organization, Role
from platform_core.permissions import grantable_roles, may_change_membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(Organization)
class OrganizationAdmin(TenantModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> dict[str, list[str]]:
        return {"slug": ["name"]} if request.user.is_superuser else {}

    def get_inlines(self, request: HttpRequest, obj: Any) -> list:
        return [MembershipInline] if request.user.is_superuser else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The slug is part of every URL of the organisation: only a superuser renames it.
        return [] if request.user.is_superuser else ["slug"]

    def view_on_site(self, obj: Organization) -> str:
        return reverse("dashboard", kwargs={"org_slug": obj.slug})


@admin.register(Membership)
class MembershipAdmin(TenantModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Adding a member means choosing among all users: superusers only; managers invite people.
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or may_change_membership(request.user, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or may_change_membership(request.user, obj)

    def get_actions(self, request: HttpRequest) -> dict:
        # Bulk deletion checks no per-row rule: memberships are removed one by one.
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("delete_selected", None)
        return actions

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if request.user.is_superuser else ["user", "organization"]

    def get_form(self, request: HttpRequest, obj: Membership | None = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        if obj is not None and not request.user.is_superuser and "role" in form.base_fields:
            allowed = set(grantable_roles(request.user, obj.organization))
            form.base_fields["role"].choices = [(value, label) for value, label in Role.choices if value in allowed]
        return form

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # The members list shows the open invitations under it (new members come through them).
        invitations = (
            self.admin_site.get_model_admin(Invitation)
            .get_queryset(request)  # scoped like every admin list
            .filter(accepted_at__isnull=True, expires_at__gt=timezone.now())
            .select_related("organization", "invited_by")
        )
        extra_context = {
            **(extra_context or {}),
            "open_invitations": invitations,
            "invitation_add_url": reverse("admin:platform_core_invitation_add"),
            "invitation_list_url": reverse("admin:platform_core_invitation_changelist"),
        }
        return super().changelist_view(request, extra_context)


class InvitationAddForm(InvitationForm):
    """The members page's invitation form, with the organisation to invite into."""

    organization = forms.ModelChoiceField(queryset=Organization.objects.none(), label="Organisation")
    field_order = ["organization", "email", "role"]


@admin.register(Invitation)
class InvitationAdmin(TenantModelAdmin):
    list_display = ["__str__", "organization", "email", "role", "invited_by", "status", "expires_at", "created_at"]
    list_filter = ["role", "organization"]
    list_select_related = ["organization", "invited_by", "accepted_by"]
    search_fields = ["email", "organization__name", "invited_by__username"]
    fields = [
        "organization",
        "email",
        "role",
        "status",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
    ]
    readonly_fields = fields

    # Invitations are made (add_view) and revoked (delete) through the members services; the
    # record itself is never edited.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or bool(grantable_roles(request.user, obj.organization))

    def delete_model(self, request: HttpRequest, obj: Invitation) -> None:
        tenant = admin_tenant(request, obj.organization)
        members.invitation_revoke(tenant=tenant, actor=request.user, invitation=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        for invitation in queryset.select_related("organization"):
            self.delete_model(request, invitation)

    @admin.display(description="status")
    def status(self, obj: Invitation) -> str:
        if obj.accepted_at:
            return f"accepted by {obj.accepted_by.get_username() if obj.accepted_by else 'a deleted account'}"
        if obj.expires_at <= timezone.now():
            return "expired"
        return "open"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        invitation = self.get_object(request, unquote(object_id))  # 404 outside the manager's organisations
        is_open = invitation.accepted_at is None and invitation.expires_at > timezone.now()
        link = members.invitation_url(invitation, request=request) if is_open else ""
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "invitation_link": link})

    def _add_form(
        self, request: HttpRequest, orgs: QuerySet[Organization], data: Any, org: Organization | None = None
    ) -> InvitationAddForm:
        form = InvitationAddForm(data, initial={"organization": org or orgs.first()})
        form.fields["organization"].queryset = orgs
        # The roles this person may grant somewhere; the service checks them in the chosen organisation.
        grantable = {role for each in orgs for role in grantable_roles(request.user, each)}
        form.fields["role"].choices = [(role.value, role.label) for role in Role if role in grantable]
        return form

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Invite by e-mail or make a link, through ``invitation_create`` (its token, its e-mail)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        orgs = Organization.objects.all() if request.user.is_superuser else managed_orgs(request)
        form = self._add_form(request, orgs, request.POST or None)
        new_link = ""
        if request.method == "POST" and form.is_valid():
            data = dict(form.cleaned_data)
            org = data.pop("organization")
            try:
                invitation = members.invitation_create(
                    tenant=admin_tenant(request, org), actor=request.user, request=request, **data
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            except PermissionDenied as exc:
                form.add_error("role", str(exc))
            else:
                self.log_addition(request, invitation, [{"added": {}}])
                if invitation.email:
                    self.message_user(request, f"Invitation sent to {invitation.email}.", messages.SUCCESS)
                    return redirect("admin:platform_core_invitation_changelist")
                new_link = members.invitation_url(invitation, request=request)
                form = self._add_form(request, orgs, None, org=org)
        context = {
            **self.admin_site.each_context(request),
            "title": "Invite someone",
            "opts": self.opts,
            "form": form,
            "new_link": new_link,
            "is_popup": IS_POPUP_VAR in request.GET,
        }
        status = 400 if form.errors else 200
        return TemplateResponse(request, "admin/platform_core/invitation_add.html", context, status=status)
