from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from platform_core.admin_tenancy import TenantModelAdmin
from platform_core.jobs import admin as jobs_admin  # noqa: F401 - registers JobAdmin
from platform_core.models import Membership, Organization, Role
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


@admin.register(Membership)
class MembershipAdmin(TenantModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Adding a member means choosing among all users: superusers only until invitations exist.
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
