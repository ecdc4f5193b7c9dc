"""The admin site: superusers, and owners / managers of at least one organisation."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from platform_core.models import Organization
from platform_core.selectors import organizations_managed_by


class PlatformAdminSite(admin.AdminSite):
    site_header = "Annotation platform administration"
    site_title = "Annotation platform"
    index_title = "Run your organisation"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not user.is_active or not user.is_authenticated:
            return False
        return may_manage(request)

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # One sign-in page for the whole platform; managers need no is_staff flag. A signed-in
        # member who runs no organisation is refused here: sending them to sign in again would loop.
        if request.user.is_authenticated:
            raise PermissionDenied("The admin is for owners and managers of an organisation.")
        return redirect_to_login(request.GET.get("next", self.index_url()))

    def index_url(self) -> str:
        from django.urls import reverse

        return reverse("admin:index", current_app=self.name)


def managed_orgs(request: HttpRequest) -> QuerySet[Organization]:
    """The organisations the requesting user runs, built once per request."""
    if not hasattr(request, "_managed_orgs"):
        request._managed_orgs = organizations_managed_by(request.user)
    return request._managed_orgs


def may_manage(request: HttpRequest) -> bool:
    """Superuser, or owner / manager somewhere: asked by every admin permission check of a page,
    so the answer is looked up once per request."""
    if not hasattr(request, "_may_manage"):
        request._may_manage = request.user.is_superuser or managed_orgs(request).exists()
    return request._may_manage
