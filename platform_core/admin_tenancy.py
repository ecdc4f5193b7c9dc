"""TenantModelAdmin: the admin base that scopes every row, choice, filter and action to the
organisations the requesting manager runs. Superusers see everything."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import ForeignKey, ManyToManyField
from django.http import Http404, HttpRequest

from platform_core.admin_site import managed_orgs, may_manage
from platform_core.tenancy import Tenant, resolve_tenant


def _is_tenant_model(model: type[models.Model]) -> bool:
    return bool(getattr(model, "tenant_path", None))


def _tenant_field(model: type[models.Model]) -> str | None:
    """The model's own field on its tenant path ("organization", "project"), if it has one."""
    path = getattr(model, "tenant_path", "")
    first = path.split("__")[0]
    return None if first in ("", "pk", "id") else first


def admin_tenant(request: HttpRequest, org: models.Model) -> Tenant:
    """The tenant an admin page acts in, for the services that take one: the manager's own
    membership of ``org`` (404 when there is none); for a superuser, who may do anything in the
    admin, an unsaved owner's membership unless they run ``org`` themselves."""
    from platform_core.models import Membership, Role

    user = request.user
    if not user.is_superuser:
        return resolve_tenant(user, org.slug)
    membership = Membership.objects.filter(user=user, organization=org).first()
    if membership is None or membership.role not in Role.managing():
        membership = Membership(user=user, organization=org, role=Role.OWNER)
    return Tenant(org=org, membership=membership)


class TenantPermissionsMixin:
    """Role-based permissions (owner / manager of some organisation) instead of Django's model
    permissions, which managers do not hold; and related choices scoped to their organisations."""

    def _may_manage(self, request: HttpRequest) -> bool:
        return may_manage(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._may_manage(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request)

    def _scope_related(self, request: HttpRequest, db_field: Any, kwargs: dict[str, Any]) -> None:
        if request.user.is_superuser:
            return
        related = db_field.related_model
        if _is_tenant_model(related):
            kwargs["queryset"] = related._default_manager.for_orgs(managed_orgs(request))
        elif related._meta.label == "auth.User" or related._meta.model_name == "user":
            # Users are not tenant rows: offer only members of the organisations this manager runs.
            kwargs["queryset"] = related._default_manager.filter(
                memberships__organization__in=managed_orgs(request)
            ).distinct()

    def formfield_for_foreignkey(self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        self._scope_related(request, db_field, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: ManyToManyField, request: HttpRequest, **kwargs: Any) -> Any:
        self._scope_related(request, db_field, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class TenantTabularInline(TenantPermissionsMixin, admin.TabularInline):
    pass


class TenantModelAdmin(TenantPermissionsMixin, admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may_manage(request)

    def view_on_site(self, obj: models.Model) -> str | None:
        # Straight to the object's page on the site: Django's default goes through the admin's
        # content-type redirect, one more hop (that redirect is scoped too, see admin_site).
        url = getattr(obj, "get_absolute_url", None)
        return url() if url else None

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.for_orgs(managed_orgs(request))

    # --- list filters ---------------------------------------------------------------------
    def get_list_filter(self, request: HttpRequest) -> Any:
        # A plain related-field filter lists every row of the related table; the related-only
        # filter lists the values present in this (scoped) queryset.
        scoped = []
        for item in super().get_list_filter(request):
            if isinstance(item, str) and not request.user.is_superuser:
                field = self.model._meta.get_field(item.split("__")[0])
                if field.is_relation:
                    item = (item, admin.RelatedOnlyFieldListFilter)
            scoped.append(item)
        return scoped

    # --- objects of other organisations ---------------------------------------------------
    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        # Django would check permissions first (403) and then redirect to the index with "doesn't
        # exist"; an object outside the scoped queryset is a plain 404, before anything else.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        field = _tenant_field(self.model)
        if obj is not None and field and not request.user.is_superuser and field not in readonly:
            # Moving an object to another organisation or project would carry its files, storage
            # keys and history across tenants: only a superuser may.
            readonly.append(field)
        return readonly
