"""The admin site: superusers, and owners / managers of at least one organisation."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.http import url_has_allowed_host_and_scheme

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
        # One sign-in page for the whole platform; managers need no is_staff flag.
        if not request.user.is_authenticated:
            return redirect_to_login(request.GET.get("next", self.index_url()))
        if self.has_permission(request):
            # Already signed in and allowed in (a bookmark, the browser's back button): go on.
            return redirect(self._safe_next(request))
        # A signed-in member who runs no organisation: sending them to sign in again would loop.
        return render(request, "registration/admin_managers_only.html", status=403)

    def get_urls(self) -> list:
        urls = super().get_urls()
        for index, pattern in enumerate(urls):
            if isinstance(pattern, URLPattern) and pattern.name == "view_on_site":
                urls[index] = path(str(pattern.pattern), self.admin_view(self.view_on_site), name="view_on_site")
        return urls

    def view_on_site(self, request: HttpRequest, content_type_id: str, object_id: str) -> HttpResponse:
        """Django's "view on site" redirect, scoped: it fetches any object by content type and id and
        answers with its URL, which names the organisation. Only an object the requesting user sees
        in this admin gets its redirect; anything else is a 404."""
        from django.contrib.contenttypes.models import ContentType
        from django.contrib.contenttypes.views import shortcut

        if not request.user.is_superuser:
            try:
                model = ContentType.objects.get_for_id(int(content_type_id)).model_class()
            except (ContentType.DoesNotExist, ValueError):
                raise Http404("No such object.") from None
            model_admin = self._registry.get(model)
            if model_admin is None or not model_admin.has_view_permission(request):
                raise Http404("No such object.")
            try:
                visible = model_admin.get_queryset(request).filter(pk=object_id).exists()
            except (ValueError, TypeError, ValidationError):
                visible = False
            if not visible:
                raise Http404("No such object.")
        return shortcut(request, content_type_id, object_id)

    def _safe_next(self, request: HttpRequest) -> str:
        target = request.GET.get("next", "")
        if urlsplit(target).path == request.path:
            return self.index_url()  # back to this page would loop
        if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return target
        return self.index_url()

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
